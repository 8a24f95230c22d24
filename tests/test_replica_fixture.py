"""tests/replica.py: the primary and its hot standby behave as replica-read tests assume."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.replica import ReplicatedServers, primary_with_replica


@pytest.fixture(scope="module")
def servers() -> Iterator[ReplicatedServers]:
    with primary_with_replica() as servers:
        yield servers


@pytest.fixture
async def engines(servers: ReplicatedServers) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Engines on a new database holding an empty table ``notes``, replayed on the standby."""
    primary_url, replica_url = servers.database(f"replica_{uuid.uuid4().hex[:12]}")
    primary, replica = create_async_engine(primary_url), create_async_engine(replica_url)
    async with primary.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (body text NOT NULL)"))
    servers.wait_for_replay()
    yield primary, replica
    await primary.dispose()
    await replica.dispose()


async def _insert(engine: AsyncEngine, body: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO notes VALUES (:body)"), {"body": body})


async def _bodies(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT body FROM notes ORDER BY body"))
        return list(result.scalars())


def _plain(url: str) -> str:
    """The URL as plain asyncpg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_urls_reach_a_primary_and_a_standby(servers: ReplicatedServers) -> None:
    for url, in_recovery in [(servers.primary_url, False), (servers.replica_url, True)]:
        assert url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
        connection = await asyncpg.connect(_plain(url))
        try:
            assert await connection.fetchval("SELECT pg_is_in_recovery()") is in_recovery
        finally:
            await connection.close()


async def test_a_row_written_on_the_primary_appears_on_the_replica(
    servers: ReplicatedServers, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    primary, replica = engines
    await _insert(primary, "first")
    servers.wait_for_replay()
    assert await _bodies(replica) == ["first"]


async def test_paused_replay_hides_new_rows_until_resumed(
    servers: ReplicatedServers, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    primary, replica = engines
    servers.pause_replay()
    try:
        await _insert(primary, "held back")
        async with primary.connect() as connection:
            written = (await connection.execute(text("SELECT pg_current_wal_lsn()"))).scalar()
        # The standby has received the row's WAL, so only the pause keeps it from the row.
        async with replica.connect() as connection:
            received = text("SELECT pg_last_wal_receive_lsn() >= CAST(:lsn AS pg_lsn)")
            deadline = time.monotonic() + 10
            while not (await connection.execute(received, {"lsn": written})).scalar():
                assert time.monotonic() < deadline, "the standby never received the WAL"
                await asyncio.sleep(0.05)
        assert await _bodies(replica) == []
        with pytest.raises(TimeoutError):
            servers.wait_for_replay(timeout=0.5)
    finally:
        servers.resume_replay()
    servers.wait_for_replay()
    assert await _bodies(replica) == ["held back"]


async def test_the_replica_refuses_writes(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    _, replica = engines
    connection = await asyncpg.connect(_plain(replica.url.render_as_string(hide_password=False)))
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await connection.execute("INSERT INTO notes VALUES ('no')")
    finally:
        await connection.close()


async def test_a_stopped_replica_refuses_connections_and_catches_up_when_restarted(
    servers: ReplicatedServers, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    primary, replica = engines
    await replica.dispose()
    servers.stop_replica()
    try:
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(_plain(servers.replica_url), timeout=5)
        await _insert(primary, "written while down")
    finally:
        servers.start_replica()
    servers.wait_for_replay()
    assert await _bodies(replica) == ["written while down"]
