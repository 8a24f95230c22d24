"""Audit rows of many subscription deliveries, written together: one INSERT, one transaction.

Every delivery still waits for its own row to commit before its event is sent; rows that become
due while a flush runs go in the next one, so a fan-out to N subscribers costs a few
transactions instead of N. A failed flush fails the deliveries whose rows it carried, as a failed
audit append fails a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from app.audit import INSERT_EVENTS

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("medrec.audit")

# Rows that come due a moment apart (subscribers woken by the same change) share a flush.
COLLECT_SECONDS = 0.002
MAX_ROWS_PER_FLUSH = 1000


class AuditWriter:
    def __init__(self, engine: AsyncEngine, connections: asyncio.Semaphore) -> None:
        self._engine = engine
        # Shared with the fan-out's reads: together they hold at most this many connections.
        self._connections = connections
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def append(self, event: dict[str, Any]) -> None:
        """Returns once the row has committed; raises what the flush carrying it raised."""
        done = asyncio.get_running_loop().create_future()
        # Retrieved here, so a failure whose waiter went away is not logged by asyncio with its
        # text (which quotes the statement).
        done.add_done_callback(_retrieve)
        self._pending.append((event, done))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush_pending(), name="medrec-audit-flush")
        # Shielded: a subscriber that disconnects must not cancel the other rows' transaction.
        await asyncio.shield(done)

    async def stop(self) -> None:
        """Lets the rows already handed over commit (shutdown)."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing

    async def _flush_pending(self) -> None:
        try:
            await asyncio.sleep(COLLECT_SECONDS)
            while self._pending:
                async with self._connections:
                    batch = self._pending[:MAX_ROWS_PER_FLUSH]
                    del self._pending[:MAX_ROWS_PER_FLUSH]
                    await self._write(batch)
        finally:
            self._flushing = None

    async def _write(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(INSERT_EVENTS, [event for event, _ in batch])
        except DBAPIError as error:
            if len(batch) == 1 or error.connection_invalidated:
                _settle(batch, error)
                return
            # A statement error (a row the table refused): rows that are fine still commit,
            # each in a transaction of its own, so one bad row fails only its own delivery.
            log.warning(
                "audit flush of %d rows failed with %s; appending them one by one",
                len(batch),
                type(error).__name__,
            )
            for one in batch:
                await self._write([one])
            return
        except Exception as error:  # the pool timed out, the network failed: every row fails
            _settle(batch, error)
            return
        _settle(batch, None)


def _settle(
    batch: list[tuple[dict[str, Any], asyncio.Future[None]]], error: BaseException | None
) -> None:
    for _, done in batch:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def _retrieve(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()
