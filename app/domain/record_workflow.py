"""The record workflow of the contract, and the status events that record every move.

DRAFT -> FINALIZED -> AMENDED (-> AMENDED ...); any status -> ENTERED_IN_ERROR (admins only).
Finalizing needs exactly one PRIMARY diagnosis; AMENDED and ENTERED_IN_ERROR need a reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, bindparam, cast, func, insert, literal, select

from app.domain.errors import BadUserInput, Forbidden, InvalidTransition
from models import RecordStatusEvent, table_of
from models.enums import RecordStatus, Role

if TYPE_CHECKING:
    import uuid

    from sqlalchemy import ColumnElement, Row, Select, Table
    from sqlalchemy.ext.asyncio import AsyncConnection

# Subscribers (and other server processes) learn of committed changes on this channel: NOTIFY
# inside the writing transaction is delivered only if, and when, that transaction commits.
STATUS_CHANNEL = "medrec_record_status"

TRANSITIONS: dict[RecordStatus, frozenset[RecordStatus]] = {
    RecordStatus.DRAFT: frozenset({RecordStatus.FINALIZED, RecordStatus.ENTERED_IN_ERROR}),
    RecordStatus.FINALIZED: frozenset({RecordStatus.AMENDED, RecordStatus.ENTERED_IN_ERROR}),
    RecordStatus.AMENDED: frozenset({RecordStatus.AMENDED, RecordStatus.ENTERED_IN_ERROR}),
    RecordStatus.ENTERED_IN_ERROR: frozenset(),
}
NEEDS_REASON = frozenset({RecordStatus.AMENDED, RecordStatus.ENTERED_IN_ERROR})

# How many rows a record holds under it, at most: what bounds every list a query reads without
# `first` (schema/limits.py costs them at these). A UB-04 claim carries at most 25 diagnoses.
MAX_DIAGNOSES = 25
MAX_ATTACHMENTS = 20  # not deleted
MAX_STATUS_CHANGES = 32  # its DRAFT, FINALIZED, ENTERED_IN_ERROR and up to 29 amendments


def rows_under(table: Table, *conditions: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows of ``table`` belong to the record ``:record_id`` of ``:tenant_id``."""
    return (
        select(func.count())
        .where(
            table.c.tenant_id == bindparam("tenant_id"),
            table.c.record_id == bindparam("record_id"),
            *conditions,
        )
        .scalar_subquery()
    )


def require_reason(target: RecordStatus, reason: str | None) -> None:
    if target in NEEDS_REASON and not reason:
        raise BadUserInput(f"input.reason: required when the new status is {target.value}")


def check_permission(target: RecordStatus, *, role: Role | None, may_edit: bool) -> None:
    """Admins mark records in error; otherwise the record's provider (or an admin) moves it.
    ``may_edit`` is false for a record read only under a break-glass grant, which writes nothing."""
    if target is RecordStatus.ENTERED_IN_ERROR:
        if role is not Role.ADMIN:
            raise Forbidden("only admins may mark a record ENTERED_IN_ERROR")
        if not may_edit:
            raise Forbidden("a break-glass grant reads records; it does not change them")
    elif not may_edit:
        raise Forbidden("only the record's provider or an admin may change its status")


def check_transition(current: RecordStatus, target: RecordStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"a {current.value} record cannot become {target.value}")


def check_finalizable(primary_diagnoses: int) -> None:
    """Checked only on the way to FINALIZED: no other move depends on the diagnoses."""
    if primary_diagnoses != 1:
        raise InvalidTransition(
            f"finalizing needs exactly one PRIMARY diagnosis; the record has {primary_diagnoses}"
        )


def require_draft(status: RecordStatus) -> None:
    if status is not RecordStatus.DRAFT:
        raise InvalidTransition(f"only DRAFT records can be edited; this one is {status.value}")


def _append_statement() -> Select[Any]:
    """One statement: the tenant's writer lock, the event, and its notification.

    The lock is taken first (the INSERT reads its one row from the lock's CTE), so the event's
    sequence number is drawn under it; pg_notify reads the inserted row."""
    events = table_of(RecordStatusEvent)
    columns = (
        "tenant_id",
        "record_id",
        "patient_id",
        "previous_status",
        "status",
        "changed_by",
        "reason",
    )
    values = {name: bindparam(name, type_=events.c[name].type) for name in columns}
    lock_key = literal("status:") + values["tenant_id"]
    locked = select(func.pg_advisory_xact_lock(func.hashtextextended(lock_key, 0))).cte("locked")
    room = rows_under(events) < MAX_STATUS_CHANGES
    event = (
        insert(events)
        .from_select(columns, select(*values.values()).select_from(locked).where(room))
        .returning(*events.c)
        .cte("event")
    )
    payload = func.json_build_object(
        "tenant", event.c.tenant_id, "sequence", event.c.sequence, "record", event.c.record_id
    )
    return select(*event.c, func.pg_notify(STATUS_CHANNEL, cast(payload, Text)).label("notified"))


# Built once: every change appends an event.
_APPEND = _append_statement()


async def append_status_event(
    connection: AsyncConnection,
    *,
    tenant_id: str,
    record_id: uuid.UUID,
    patient_id: uuid.UUID,
    previous: RecordStatus | None,
    status: RecordStatus,
    changed_by: str,
    reason: str | None,
) -> Row[Any]:
    """Writes the event and queues its notification, both inside the caller's transaction.

    One writer per tenant at a time from here to commit: the tenant's sequence numbers become
    visible in order, which is what lets subscribers resume "after N" without a gap."""
    parameters = {
        "tenant_id": tenant_id,
        "record_id": record_id,
        "patient_id": patient_id,
        "previous_status": previous,
        "status": status,
        "changed_by": changed_by,
        "reason": reason,
    }
    event: Row[Any] | None = (await connection.execute(_APPEND, parameters)).one_or_none()
    if event is None:
        raise InvalidTransition(f"a record takes at most {MAX_STATUS_CHANGES} status changes")
    return event
