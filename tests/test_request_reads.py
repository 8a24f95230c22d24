"""A request's reads: one pooled connection at a time, through SQLAlchemy or on the driver."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.request_reads import RequestReads, autocommit_engine, pooled_driver

if TYPE_CHECKING:
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
                await connection.fetchval("SELECT 1 / 0")

        with pytest.raises(Exception, match="division by zero"):
            await failing()
        await reads.close()
    assert connection.is_closed()
    assert watch.invalidated == 1
    assert watch.out == 0
