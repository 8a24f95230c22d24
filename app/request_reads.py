"""One database connection for all the reads of an HTTP request, and for its audit row.

The connection is taken from the pool at the first read and given back when the response has
been sent. It runs in autocommit mode: each statement is its own snapshot, as when every
DataLoader batch had a session of its own, but without a BEGIN, a ROLLBACK and a pool round
trip around every statement. Batches that are due at the same moment take turns on it.

Writes keep their own transactions (resolvers/mutations.py), and a subscription, which lives
for as long as its socket, takes a pooled session per batch instead of holding a connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Where a DataLoader batch or a list query gets its session: a sessionmaker, or a RequestReads.
SessionSource: TypeAlias = Callable[[], AbstractAsyncContextManager[AsyncSession]]


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
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session on the request's connection, used by no one else until it is closed."""
        async with self._turn:
            if self._connection is None:
                self._connection = await self._engine.connect()
            # Bound to a connection it does not own: closing it keeps the connection open.
            async with AsyncSession(self._connection, expire_on_commit=False) as session:
                yield session

    async def close(self) -> None:
        """Gives the connection back to the pool; a later read would take one again."""
        async with self._turn:
            connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
