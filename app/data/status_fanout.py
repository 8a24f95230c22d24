"""The subscription fan-out of one process: subscribers who would read the same rows share reads.

Subscribers whose access predicate and filters are equal form a scope (the subscriptions of one
admin watching everything are one; a staff member's break-glass grants are its own, so its
subject is part of its scope). After a doorbell ring, the scope's subscribers waiting to read
after the same position share one ``events_after`` statement, and the statements that load what
those events' selections need (the record, its patient, ...) run once for all of them. Each
subscriber still turns the rows into GraphQL objects itself, so its audit trail notes exactly
what it was handed, and still appends its own audit row (batched, app/data/audit_writer.py). The
fan-out uses at most a few pooled connections however many subscribe, so it cannot starve HTTP
requests of the pool or time out waiting for it.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.data.audit_writer import AuditWriter
from app.data.repositories import status_events
from app.data.request_reads import autocommit_engine
from app.domain.viewer import Viewer, effective_role
from models.enums import Role

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.data.database import FetchedRow

# Events read per statement; a subscriber that fell behind catches up in pages of this size.
PAGE = 100

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Scope:
    """What decides which events and rows a subscriber reads: its access predicate and filters."""

    tenant_id: str
    role: Role
    # Admins and providers read under the break-glass grants their subject holds.
    subject: str | None
    provider_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    record_filter: uuid.UUID | None
    patient_filter: uuid.UUID | None

    @classmethod
    def of(
        cls, viewer: Viewer, *, record_id: uuid.UUID | None, patient_id: uuid.UUID | None
    ) -> Scope:
        role = effective_role(viewer)
        assert role is not None, "a reader"
        assert viewer.tenant_id is not None, "a reader"
        return cls(
            tenant_id=viewer.tenant_id,
            role=role,
            subject=None if role is Role.PATIENT else viewer.subject,
            provider_id=viewer.provider_id if role is Role.PROVIDER else None,
            patient_id=viewer.patient_id if role is Role.PATIENT else None,
            record_filter=record_id,
            patient_filter=patient_id,
        )

    def viewer(self) -> Viewer:
        """A viewer with exactly what app/domain/access.py's predicates read, so equal scopes
        read equal rows."""
        return Viewer(
            subject=self.subject or "",
            roles=frozenset({self.role}),
            tenant_id=self.tenant_id,
            provider_id=self.provider_id,
            patient_id=self.patient_id,
            expires_at=datetime.max.replace(tzinfo=UTC),
        )


class SharedStatements:
    """The read statements of one page of events: each distinct one runs once for the scope."""

    def __init__(self, fanout: StatusFanout, viewer: Viewer) -> None:
        self._fanout = fanout
        self._viewer = viewer
        self._results: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, query: Callable[..., Awaitable[V]], args: tuple[Any, ...]) -> V:
        """``query(session, viewer, *args)``, as the scope's viewer."""
        key = (query, *(tuple(arg) if isinstance(arg, list) else arg for arg in args))
        try:
            result = self._results.get(key)
        except TypeError:  # an argument that cannot be a key: read alone
            return await self._fanout.read(query, self._viewer, *args)
        if result is None:
            result = self._results[key] = asyncio.ensure_future(
                self._fanout.read(query, self._viewer, *args)
            )
            result.add_done_callback(_retrieve)
        # Shielded: one subscriber going away must not cancel the others' statement.
        return await asyncio.shield(result)


@dataclass(frozen=True, slots=True)
class EventPage:
    rows: list[FetchedRow]
    statements: SharedStatements


class ScopeReader:
    """One scope's subscribers in this process; kept while one of them holds it."""

    def __init__(self, scope: Scope, fanout: StatusFanout) -> None:
        self.scope = scope
        self._viewer = scope.viewer()
        self._fanout = fanout
        # Reads not started yet, by position: subscribers keep joining until a connection is free.
        self._waiting: dict[int, asyncio.Future[EventPage]] = {}
        self._reading: asyncio.Task[None] | None = None

    async def events_after(self, position: int) -> EventPage:
        """At most ``PAGE`` readable events after ``position``, in sequence order."""
        page = self._waiting.get(position)
        if page is None:
            page = self._waiting[position] = asyncio.get_running_loop().create_future()
            page.add_done_callback(_retrieve)
            if self._reading is None:
                self._reading = asyncio.create_task(self._read_waiting())
        return await asyncio.shield(page)

    async def _read_waiting(self) -> None:
        try:
            while self._waiting:
                async with self._fanout.session() as session:
                    waiting, self._waiting = self._waiting, {}
                    try:
                        for position, page in waiting.items():
                            rows = await status_events.events_after(
                                session,
                                self._viewer,
                                position,
                                record_id=self.scope.record_filter,
                                patient_id=self.scope.patient_filter,
                                limit=PAGE,
                            )
                            page.set_result(
                                EventPage(rows, SharedStatements(self._fanout, self._viewer))
                            )
                    except Exception as error:  # the connection failed: so does this round
                        for page in waiting.values():
                            if not page.done():
                                page.set_exception(error)
        finally:
            self._reading = None


class StatusFanout:
    def __init__(self, engine: AsyncEngine, connections: int) -> None:
        # Reads run in autocommit: each statement its own snapshot, no BEGIN/ROLLBACK around it.
        self._reads_engine = autocommit_engine(engine)
        self._connections = asyncio.Semaphore(connections)
        self._readers: weakref.WeakValueDictionary[Scope, ScopeReader] = (
            weakref.WeakValueDictionary()
        )
        # Deliveries woken by the same change come due a moment apart: they share a flush.
        self.audit = AuditWriter(engine, connections=self._connections, collect_seconds=0.002)

    def reader(self, scope: Scope) -> ScopeReader:
        reader = self._readers.get(scope)
        if reader is None:
            reader = self._readers[scope] = ScopeReader(scope, self)
        return reader

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session on one of the fan-out's few connections; waits for a free one."""
        async with self._connections, AsyncSession(self._reads_engine) as session:
            yield session

    async def read(self, query: Callable[..., Awaitable[V]], viewer: Viewer, *args: Any) -> V:
        async with self.session() as session:
            return await query(session, viewer, *args)

    async def latest_sequence(self, tenant_id: str) -> int:
        async with self.session() as session:
            return await status_events.latest_sequence(session, tenant_id)

    async def stop(self) -> None:
        await self.audit.stop()


def _retrieve(done: asyncio.Future[Any]) -> None:
    """A failure nobody awaits any more is not logged by asyncio (its text quotes SQL)."""
    if not done.cancelled():
        done.exception()
