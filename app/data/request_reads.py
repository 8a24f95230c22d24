"""One database connection for all the reads of an HTTP request.

The connection is taken from the pool at the first read and given back once the operation's
reads are over, before the request waits for another connection (a write's transaction, the
audit writer's flush), or at the latest once the response is built, before it is sent. It runs
in autocommit mode: each statement is its own snapshot, as when every DataLoader batch had a
session of its own, but without a BEGIN, a ROLLBACK and a pool round trip around every
statement. Batches that are due at the same moment take turns on it.

Writes keep their own transactions (resolvers/mutations.py), and a subscription, which lives
for as long as its socket, takes a pooled connection per use instead of holding one.

Statements compiled once and run on asyncpg's connection itself (app/data/database.py's
DriverStatement) take it through ``driver``: the request's connection when a read opened it,
else a pooled one without SQLAlchemy's ``Connection`` around it, which costs a quarter as much
to take and give back (about 25 us against 100 for a one-patient request).

SQLAlchemy's async engine runs every pool operation in a new greenlet, in case it needs I/O;
on a request's stack that cost about 80 us of a one-patient request's 650. Taking an idle
connection and giving one back need no I/O where the pool never pings or recycles, so there
``_take`` and ``_give_back`` call the pool directly; a connection that turns out to need
reconnecting is taken SQLAlchemy's way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.util import greenlet_spawn

from app.data.database import direct_pool
from app.domain.errors import is_database_outage, refused_input

if TYPE_CHECKING:
    import asyncpg
    from sqlalchemy.engine import Dialect
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
    from sqlalchemy.pool import PoolProxiedConnection

    from app.data.database import Reader

# Where a DataLoader batch, a list query or the audit row gets its connection: a RequestReads, or
# (for WebSockets, which live long) the autocommit engine's `connect`, one connection per use.
ReaderSource: TypeAlias = "Callable[[], AbstractAsyncContextManager[Reader]]"
# Where a statement run on the driver gets asyncpg's connection: RequestReads.driver, or (for
# WebSockets) pooled_driver, one pooled connection per use.
DriverSource: TypeAlias = "Callable[[], AbstractAsyncContextManager[Driver]]"


def autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine``'s pool, in autocommit mode; made once per process (it is not free)."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def nothing_held() -> None:
    """What a WebSocket's context gives back: its reads take a pooled connection per use."""


class Driver(NamedTuple):
    """asyncpg's connection, and the dialect its statements are compiled for."""

    connection: asyncpg.Connection
    dialect: Dialect


@asynccontextmanager
async def pooled_driver(engine: AsyncEngine) -> AsyncIterator[Driver]:
    """A pooled connection's asyncpg connection, given back when the block ends."""
    pooled = await _take(engine)
    failed = True
    try:
        yield Driver(pooled.driver_connection, engine.dialect)
        failed = False
    except BaseException as error:
        failed = not _connection_sound(error)
        raise
    finally:
        await _give_back(engine, pooled, failed=failed)


def _connection_sound(error: BaseException) -> bool:
    """After ``error``, the connection can serve the next statement: the database (or asyncpg,
    before sending) refused one statement's values, and answered in full."""
    return isinstance(error, Exception) and refused_input(error) is not None


async def _take(engine: AsyncEngine) -> PoolProxiedConnection:
    pool = direct_pool(engine)
    if pool is not None and pool.checkedin() > 0:
        try:
            return engine.sync_engine.raw_connection()
        except MissingGreenlet:
            # The idle connection must reconnect (a failover invalidated the pool). SQLAlchemy
            # gave it back before raising, and takes it again, its own way, just below.
            pass
    return await engine.raw_connection()


async def _give_back(engine: AsyncEngine, pooled: PoolProxiedConnection, *, failed: bool) -> None:
    if failed:
        # A statement failed or was cancelled on the driver, out of SQLAlchemy's sight: the
        # connection's state is unknown, and a dead one must not go back to the pool.
        await greenlet_spawn(pooled.invalidate)
    else:
        pool = direct_pool(engine)
        driver = pooled.driver_connection
        # Back into the pool's queue without I/O: there is room (an overflow connection is
        # closed instead) and no transaction to roll back.
        if (
            pool is not None
            and pool.checkedin() < pool.size()
            and driver is not None
            and not driver.is_in_transaction()
        ):
            pooled.close()
            return
    await greenlet_spawn(pooled.close)


def _closed(pooled: PoolProxiedConnection) -> bool:
    driver = pooled.driver_connection
    return driver is not None and bool(driver.is_closed())


class RequestReads:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        primary: AsyncEngine | None = None,
        unreachable: Callable[[], None] | None = None,
    ) -> None:
        """``engine``: one from autocommit_engine(), the primary's or a replica's. For a replica,
        ``primary`` is the primary's, read from instead when the replica cannot give a connection
        (``unreachable`` is then told) and after ``close``."""
        self._engine = engine
        self._primary = primary
        self._unreachable = unreachable
        self._connection: AsyncConnection | None = None
        self._pooled: PoolProxiedConnection | None = None  # taken by ``driver`` alone
        self._turn = asyncio.Lock()

    @property
    def on_replica(self) -> bool:
        return self._primary is not None

    def _to_primary(self) -> None:
        if self._primary is not None:
            self._engine, self._primary = self._primary, None

    def _replica_failed(self, error: BaseException | None) -> bool:
        """On a replica, after ``error`` (None: a connection found closed): whether the replica
        is unreachable, in which case the request reads from the primary from now on."""
        if self._primary is None or (error is not None and not is_database_outage(error)):
            return False
        if self._unreachable is not None:
            self._unreachable()
        self._to_primary()
        return True

    async def _take_pooled(self) -> PoolProxiedConnection:
        try:
            pooled = await _take(self._engine)
        except Exception as error:
            if not self._replica_failed(error):
                raise
            return await _take(self._engine)
        if self.on_replica and _closed(pooled):
            # The server ended it (the replica shut down): found before any statement is sent.
            await _give_back(self._engine, pooled, failed=True)
            self._replica_failed(None)
            return await _take(self._engine)
        return pooled

    async def _connect(self) -> AsyncConnection:
        try:
            connection = await self._engine.connect()
        except Exception as error:
            if not self._replica_failed(error):
                raise
            return await self._engine.connect()
        if self.on_replica and _closed(await connection.get_raw_connection()):
            await connection.invalidate()
            await connection.close()
            self._replica_failed(None)
            return await self._engine.connect()
        return connection

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Driver]:
        """asyncpg's connection of the request, used by no one else until the block ends."""
        dialect = self._engine.dialect
        async with self._turn:
            if self._connection is not None:
                raw = await self._connection.get_raw_connection()
                try:
                    yield Driver(raw.driver_connection, dialect)
                except BaseException as error:
                    if not _connection_sound(error):
                        # As _give_back does; reader replaces it.
                        await self._connection.invalidate()
                    raise
                return
            if self._pooled is None:
                self._pooled = await self._take_pooled()
            try:
                yield Driver(self._pooled.driver_connection, dialect)
            except BaseException as error:
                if not _connection_sound(error):
                    pooled, self._pooled = self._pooled, None
                    await _give_back(self._engine, pooled, failed=True)
                    self._replica_failed(error)
                raise

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Reader]:
        """The request's connection, used by no one else until the block ends."""
        async with self._turn:
            if self._pooled is not None:
                # A read after a driver statement (a rare mix): one connection at a time.
                pooled, self._pooled = self._pooled, None
                await _give_back(self._engine, pooled, failed=False)
            if self._connection is not None and self._connection.invalidated:
                # The database dropped it (a restart, a failover): later reads take a new one
                # rather than failing on the dead one, from the primary if it was a replica's.
                stale, self._connection = self._connection, None
                await stale.close()
                self._replica_failed(None)
            if self._connection is None:
                self._connection = await self._connect()
            # A plain connection, not an ORM session: the reads only run Core statements, and a
            # session costs a third more per statement.
            yield self._connection

    async def close(self) -> None:
        """Gives the connection back to the pool. A later read takes one again, the primary's:
        after a write, the request's answer must see it."""
        async with self._turn:
            connection, self._connection = self._connection, None
            pooled, self._pooled = self._pooled, None
            engine = self._engine
            self._to_primary()
        if connection is not None:
            await connection.close()
        if pooled is not None:
            await _give_back(engine, pooled, failed=False)
