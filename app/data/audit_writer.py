"""Audit rows of many operations, written together: one round trip, one transaction.

Every operation still waits for its own row to commit before its answer (a response, a
subscription's event) is sent. A flush starts as soon as a row is due and none is running;
rows that become due while it runs go in the next one. Under load, the concurrent requests of a
process share one commit (one WAL flush) instead of one each, and their reads stay read-only
statements that write nothing. A failed flush fails the operations whose rows it carried, as a
failed audit append fails a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from sqlalchemy import Text, TypeDecorator, any_, bindparam, cast, func, insert, or_, select
from sqlalchemy import column as sql_column
from sqlalchemy.dialects.postgresql import JSONB

from app.data.database import DriverStatement
from app.data.request_reads import pooled_driver
from models import AuditEvent, BreakGlassGrant, table_of

if TYPE_CHECKING:
    from sqlalchemy import Dialect, Insert
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.data.database import Reader

log = logging.getLogger("medrec.audit")

MAX_ROWS_PER_FLUSH = 1000
# The columns the database fills: the id, the time, the grant.
_NOT_GIVEN = ("id", "occurred_at", "break_glass_grant_id")


class _JsonRows(TypeDecorator[list[dict[str, Any]]]):
    """The rows as JSON text, encoded by orjson (ids, times and enums as their text) whatever
    JSON settings the engine was made with."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: list[dict[str, Any]] | None, dialect: Dialect) -> str:
        # str for what orjson does not know: asyncpg's own UUIDs, in ids read from rows. Every
        # value is then parsed as its column's type, so nothing else passes as text.
        return orjson.dumps(value, default=str).decode()


def _insert_events() -> Insert:
    """One INSERT of any number of rows, given as one JSON array of AuditTrail.event dictionaries
    (app/domain/audit.py) and read back as a table of the audit columns' types. A flush of the
    writer is one statement, so the table's statement trigger (audit_event_patients) runs once
    for it; a change's own row goes the same way, as an array of one.

    Each row also names the break-glass grant its operation read under, found here by the
    database's clock: one the caller held for a patient the row names, active at some moment
    since the operation's reads began (``since``)."""
    events = table_of(AuditEvent)
    grants = table_of(BreakGlassGrant)
    written = [column for column in events.c if column.key not in _NOT_GIVEN]
    rows = (
        func.jsonb_to_recordset(cast(bindparam("rows", type_=_JsonRows()), JSONB))
        .table_valued(
            *(sql_column(column.key, column.type) for column in written),
            sql_column("since", grants.c.expires_at.type),
        )
        .render_derived(name="flush", with_types=True)
    )
    grant = (
        select(grants.c.id)
        .where(
            grants.c.tenant_id == rows.c.tenant_id,
            grants.c.subject == rows.c.subject,
            grants.c.patient_id == any_(rows.c.patient_ids),
            grants.c.granted_at <= func.now(),
            grants.c.expires_at > rows.c.since,
            or_(grants.c.revoked_at.is_(None), grants.c.revoked_at > rows.c.since),
        )
        .order_by(grants.c.granted_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    return insert(events).from_select(
        [*(column.key for column in written), "break_glass_grant_id"],
        select(*(rows.c[column.key] for column in written), grant),
    )


# Built once: every operation appends a row, and building a statement costs more than running it.
INSERT_EVENTS = _insert_events()


async def append(session: Reader, event: dict[str, Any]) -> None:
    """Appends one row inside ``session``'s transaction (a change audited with its work)."""
    await session.execute(INSERT_EVENTS, {"rows": [event]})


class AuditWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        connections: asyncio.Semaphore | None = None,
        collect_seconds: float = 0.0,
    ) -> None:
        """``connections``: a limit shared with other users of the pool (the fan-out's reads);
        ``collect_seconds``: how long a flush waits for more rows before it starts (rows that
        come due a moment apart, such as subscribers woken by the same change)."""
        self._engine = engine
        self._connections: AbstractAsyncContextManager[Any] = (
            connections or contextlib.nullcontext()
        )
        self._collect_seconds = collect_seconds
        self._insert = DriverStatement(INSERT_EVENTS, engine.dialect)
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
        # Shielded: a caller that goes away must not cancel the other rows' transaction.
        await asyncio.shield(done)

    async def stop(self) -> None:
        """Lets the rows already handed over commit (shutdown)."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing

    async def _flush_pending(self) -> None:
        try:
            # Rows handed over in the same turn of the event loop share the first flush.
            await asyncio.sleep(self._collect_seconds)
            while self._pending:
                async with self._connections:
                    batch = self._pending[:MAX_ROWS_PER_FLUSH]
                    del self._pending[:MAX_ROWS_PER_FLUSH]
                    await self._write(batch)
        finally:
            self._flushing = None

    async def _write(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        try:
            async with pooled_driver(self._engine) as driver:
                # Outside a transaction: the statement commits on its own (one commit).
                await self._insert.execute(
                    driver.connection, {"rows": [event for event, _ in batch]}
                )
        except asyncpg.PostgresError as error:
            if len(batch) == 1:
                _settle(batch, error)
                return
            # The database refused the statement (a row the table refused): rows that are fine
            # still commit, each in a transaction of its own, so one bad row fails only its own
            # operation.
            log.warning(
                "audit flush of %d rows failed with %s; appending them one by one",
                len(batch),
                type(error).__name__,
            )
            for one in batch:
                await self._write([one])
            return
        except Exception as error:  # the pool timed out, the connection failed: every row fails
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
