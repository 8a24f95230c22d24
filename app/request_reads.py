"""One database connection for all the reads of an HTTP request, and for its audit row.

The connection is taken from the pool at the first read and given back once the response is
built, before it is sent. It runs in autocommit mode: each statement is its own snapshot, as
when every DataLoader batch had a session of its own, but without a BEGIN, a ROLLBACK and a pool
round trip around every statement. Batches that are due at the same moment take turns on it.

Writes keep their own transactions (resolvers/mutations.py), and a subscription, which lives
for as long as its socket, takes a pooled connection per use instead of holding one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from app.database import Reader

# Where a DataLoader batch, a list query or the audit row gets its connection: a RequestReads, or
# (for WebSockets, which live long) the autocommit engine's `connect`, one connection per use.
ReaderSource: TypeAlias = "Callable[[], AbstractAsyncContextManager[Reader]]"


def autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine``'s pool, in autocommit mode; made once per process (it is not free)."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


class RequestReads:
    def __init__(self, engine: AsyncEngine) -> None:
        """``engine``: one from autocommit_engine()."""
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._turn = asyncio.Lock()

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Reader]:
        """The request's connection, used by no one else until the block ends."""
        async with self._turn:
            if self._connection is not None and self._connection.invalidated:
                # The database dropped it (a restart, a failover): later reads, the audit row
                # among them, take a new one rather than failing on the dead one.
                stale, self._connection = self._connection, None
                await stale.close()
            if self._connection is None:
                self._connection = await self._engine.connect()
            # A plain connection, not an ORM session: the reads only run Core statements, and a
            # session costs a third more per statement.
            yield self._connection

    async def close(self) -> None:
        """Gives the connection back to the pool; a later read would take one again."""
        async with self._turn:
            connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
