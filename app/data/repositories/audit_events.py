"""Audit trail reads (admins only; the resolver checks the role)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from app.data.database import fetched_rows
from app.data.pagination import KeysetOrder, page_parameters, paged, parse_datetime, parse_int
from models import AuditEvent

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Select

    from app.data.database import FetchedRow, Reader
    from app.data.pagination import PageRequest
    from app.domain.viewer import Viewer

AUDIT_ORDER = KeysetOrder(
    "audit_events",
    (AuditEvent.occurred_at, AuditEvent.id),
    descending=True,
    decoders=(parse_datetime, parse_int),
)


@dataclass(frozen=True, slots=True)
class AuditEventFilter:
    patient_id: uuid.UUID | None = None
    # Half-open range, like the record filter: occurredAfter <= occurred_at < occurredBefore.
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None


def _filtered(viewer: Viewer, filter_: AuditEventFilter) -> Select[Any]:
    statement = select(*AuditEvent.__table__.c).where(AuditEvent.tenant_id == viewer.tenant_id)
    if filter_.patient_id is not None:
        # `@>` is what the GIN index on patient_ids serves.
        statement = statement.where(AuditEvent.patient_ids.contains([filter_.patient_id]))
    if filter_.occurred_after is not None:
        statement = statement.where(AuditEvent.occurred_at >= filter_.occurred_after)
    if filter_.occurred_before is not None:
        statement = statement.where(AuditEvent.occurred_at < filter_.occurred_before)
    return statement


async def audit_event_page(
    session: Reader, viewer: Viewer, filter_: AuditEventFilter, page: PageRequest
) -> list[FetchedRow]:
    statement = paged(_filtered(viewer, filter_), AUDIT_ORDER, page.after is not None)
    return fetched_rows(await session.execute(statement, page_parameters(page)))


async def count_audit_events(session: Reader, viewer: Viewer, filter_: AuditEventFilter) -> int:
    statement = _filtered(viewer, filter_).with_only_columns(func.count())
    return (await session.execute(statement)).scalar_one()
