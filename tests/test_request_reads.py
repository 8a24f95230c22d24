"""A request's reads: one pooled connection at a time, through SQLAlchemy or on the driver."""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings
from typing import TYPE_CHECKING

import greenlet  # type: ignore[import-untyped]  # no stubs; only getcurrent is used
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

from app.data.database import allow_direct_checkout, create_engine
from app.data.request_reads import RequestReads, autocommit_engine, pooled_driver
from app.domain.errors import refused_input
from app.settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import asyncpg
    from sqlalchemy.ext.asyncio import AsyncEngine


class _PoolWatch:
    """Connections out of the pool at once, and connections invalidated, while it listens."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.pool = engine.sync_engine.pool
        self.out = self.most_out = self.invalidated = 0

    def checkout(self, *_: object) -> None:
        self.out += 1
        self.most_out = max(self.most_out, self.out)

    def checkin(self, *_: object) -> None:
        self.out -= 1

    def invalidate(self, *_: object) -> None:
        self.invalidated += 1

    def __enter__(self) -> _PoolWatch:
        for name in ("checkout", "checkin", "invalidate"):
            event.listen(self.pool, name, getattr(self, name))
        return self

    def __exit__(self, *_: object) -> None:
        for name in ("checkout", "checkin", "invalidate"):
            event.remove(self.pool, name, getattr(self, name))


async def test_driver_and_reader_share_one_connection_at_a_time(engine: AsyncEngine) -> None:
    reads = RequestReads(autocommit_engine(engine))
    with _PoolWatch(engine) as watch:
        async with reads.driver() as driver:
            first = await driver.connection.fetchval("SELECT pg_backend_pid()")
        async with reads.driver() as driver:  # the same connection, kept for the request
            assert await driver.connection.fetchval("SELECT pg_backend_pid()") == first
        async with reads.reader() as reader:  # a read after it: the driver's went back
            await reader.execute(text("SELECT 1"))
        assert isinstance(reader, AsyncConnection)
        async with reads.driver() as driver:  # now the reader's connection, not another
            assert driver.connection is (await reader.get_raw_connection()).driver_connection
        await reads.close()
    assert watch.most_out == 1
    assert watch.out == 0
    assert watch.invalidated == 0


@pytest.mark.parametrize(
    "held", ["request", "reader", "pooled"], ids=["request", "after-a-read", "pooled"]
)
async def test_a_failed_driver_statement_discards_its_connection(
    engine: AsyncEngine, held: str
) -> None:
    """Its state is unknown to SQLAlchemy: it must not go back to the pool as it is."""
    reads = RequestReads(autocommit_engine(engine))
    source = (
        reads.driver if held != "pooled" else (lambda: pooled_driver(autocommit_engine(engine)))
    )

    async def read_first() -> None:
        if held == "reader":  # the request's SQLAlchemy connection, which the driver then uses
            async with reads.reader() as reader:
                await reader.execute(text("SELECT 1"))

    with _PoolWatch(engine) as watch:
        await read_first()
        async with source() as driver:
            connection = driver.connection
        await reads.close()  # a block that ended well gives its connection back
        assert not connection.is_closed()
        assert watch.invalidated == 0

        async def failing() -> None:
            await read_first()
            async with source() as driver:
                nonlocal connection
                connection = driver.connection
                await connection.fetchval("SELECT 1 FROM no_such_table")

        with pytest.raises(Exception, match="no_such_table"):
            await failing()
        await reads.close()
    assert connection.is_closed()
    assert watch.invalidated == 1
    assert watch.out == 0


_PLUS_ONE = dt.timezone(dt.timedelta(hours=1))


@pytest.mark.parametrize(
    ("statement", "value"),
    [
        ("SELECT $1::int / 0", 1),  # the database refuses it: SQLSTATE 22012
        ("SELECT $1::text", "a\x00b"),  # 22021: text cannot hold NUL
        ("SELECT $1::int4", 2**40),  # asyncpg refuses to encode it, before sending
        ("SELECT $1::timestamptz", dt.datetime(1, 1, 1, tzinfo=_PLUS_ONE)),  # before year 1 in UTC
    ],
    ids=["division-by-zero", "nul-in-text", "int4-overflow", "timestamptz-overflow"],
)
@pytest.mark.parametrize("held", ["request", "reader", "pooled"])
async def test_a_driver_statement_refused_for_its_values_keeps_its_connection(
    engine: AsyncEngine, held: str, statement: str, value: object
) -> None:
    """Only the statement failed, and the database said so in full: the connection is sound."""
    reads = RequestReads(autocommit_engine(engine))
    source = (
        reads.driver if held != "pooled" else (lambda: pooled_driver(autocommit_engine(engine)))
    )
    with _PoolWatch(engine) as watch:
        if held == "reader":
            async with reads.reader() as reader:
                await reader.execute(text("SELECT 1"))
        used: list[asyncpg.Connection] = []

        async def refused_statement() -> None:
            async with source() as driver:
                used.append(driver.connection)
                await driver.connection.fetchval(statement, value)

        with pytest.raises(Exception) as refused:  # noqa: PT011  # classified below
            await refused_statement()
        assert refused_input(refused.value) is not None
        if held != "pooled":  # the request goes on with the same connection
            async with source() as driver:
                assert driver.connection is used[0]
        await reads.close()
    assert not used[0].is_closed()
    assert await used[0].fetchval("SELECT 1") == 1
    assert watch.invalidated == 0
    assert watch.out == 0


@pytest.fixture
async def one_connection_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The app's engine (its pool's idle connections taken on the loop), one connection big."""
    settings = Settings(
        database_url=database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=5
    )
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


def _queue_pool(engine: AsyncEngine) -> QueuePool:
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    return pool


class _GreenletWatch:
    """Whether the pool's checkouts and checkins ran on the event loop's own greenlet (no
    greenlet of SQLAlchemy's around them)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.pool = engine.sync_engine.pool
        self.loop_greenlet = greenlet.getcurrent()
        self.on_loop: list[tuple[str, bool]] = []

    def _note(self, name: str) -> None:
        self.on_loop.append((name, greenlet.getcurrent() is self.loop_greenlet))

    def checkout(self, *_: object) -> None:
        self._note("checkout")

    def checkin(self, *_: object) -> None:
        self._note("checkin")

    def __enter__(self) -> _GreenletWatch:
        for name in ("checkout", "checkin"):
            event.listen(self.pool, name, getattr(self, name))
        return self

    def __exit__(self, *_: object) -> None:
        for name in ("checkout", "checkin"):
            event.remove(self.pool, name, getattr(self, name))


async def test_an_idle_connection_is_taken_and_given_back_on_the_loop(
    one_connection_engine: AsyncEngine,
) -> None:
    engine = autocommit_engine(one_connection_engine)
    async with pooled_driver(engine) as driver:  # the first connects: SQLAlchemy's greenlet
        await driver.connection.fetchval("SELECT 1")
    with _GreenletWatch(engine) as watch:
        reads = RequestReads(engine)
        async with reads.driver() as driver:
            assert await driver.connection.fetchval("SELECT 1") == 1
        await reads.close()
        async with pooled_driver(engine) as driver:
            assert await driver.connection.fetchval("SELECT 2") == 2
    assert watch.on_loop == [("checkout", True), ("checkin", True)] * 2
    assert _queue_pool(engine).checkedin() == 1


async def test_a_connection_that_must_reconnect_is_taken_through_sqlalchemy(
    one_connection_engine: AsyncEngine,
) -> None:
    engine = autocommit_engine(one_connection_engine)
    pool = _queue_pool(engine)
    async with pooled_driver(engine) as driver:
        before = await driver.connection.fetchval("SELECT pg_backend_pid()")
    # Marked to be replaced at its next checkout, as after a failover invalidates the pool.
    pooled = await engine.raw_connection()
    await greenlet_spawn(pooled.invalidate, soft=True)
    await greenlet_spawn(pooled.close)
    with _GreenletWatch(engine) as watch, warnings.catch_warnings(record=True) as warned:
        warnings.resetwarnings()  # the app's filter alone, not the test configuration's
        allow_direct_checkout(engine)
        reads = RequestReads(engine)
        async with reads.driver() as driver:
            after = await driver.connection.fetchval("SELECT pg_backend_pid()")
        await reads.close()
    assert after != before
    # SQLAlchemy closed the connect coroutine it refused to run off its greenlet: no warning.
    assert [str(warning.message) for warning in warned] == []
    # The attempt on the loop gave it back; SQLAlchemy's own checkout reconnected it.
    assert watch.on_loop[-2:] == [("checkout", False), ("checkin", True)]
    assert (pool.checkedin(), pool.checkedout()) == (1, 0)
    with _GreenletWatch(engine) as watch:  # the next request takes it on the loop again
        async with pooled_driver(engine) as driver:
            assert await driver.connection.fetchval("SELECT pg_backend_pid()") == after
    assert watch.on_loop == [("checkout", True), ("checkin", True)]


async def test_a_request_waits_for_a_busy_pool(one_connection_engine: AsyncEngine) -> None:
    engine = autocommit_engine(one_connection_engine)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with pooled_driver(engine) as driver:
            await driver.connection.fetchval("SELECT 1")
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    reads = RequestReads(engine)

    async def read() -> int:
        async with reads.driver() as driver:
            value: int = await driver.connection.fetchval("SELECT 3")
        await reads.close()
        return value

    waiting = asyncio.create_task(read())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # no idle connection: it waits in SQLAlchemy's queue
    release.set()
    assert await asyncio.wait_for(waiting, 5) == 3
    await holder
    assert _queue_pool(engine).checkedout() == 0
