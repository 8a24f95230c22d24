"""Audit trail reads (the resolvers check who may read them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from app.data.database import fetched_rows
from app.data.pagination import KeysetOrder, page_parameters, paged, parse_datetime, parse_int
from models import AuditEvent, AuditEventPatient

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import ColumnElement, Select
    from sqlalchemy.orm import InstrumentedAttribute

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


def _in_range(column: InstrumentedAttribute[datetime], filter_: AuditEventFilter) -> list[Any]:
    conditions = []
    if filter_.occurred_after is not None:
        conditions.append(column >= filter_.occurred_after)
    if filter_.occurred_before is not None:
        conditions.append(column < filter_.occurred_before)
    return conditions


def _filtered(tenant_id: str | None, filter_: AuditEventFilter) -> Select[Any]:
    """Every audit row of the tenant the filter takes (a patient's: see ``_patient_rows``)."""
    return select(*AuditEvent.__table__.c).where(
        AuditEvent.tenant_id == tenant_id, *_in_range(AuditEvent.occurred_at, filter_)
    )


# A patient's audit rows: a page of audit_event_patients' primary key (tenant, patient,
# occurred_at, audit row id; scanned backwards, newest first), then those audit rows, each in the
# one partition of its month. Paged inside, so no estimate can make the database fetch and sort
# every row of a patient with thousands. The cursor values are the audit row's own (AUDIT_ORDER).
_PATIENT_ORDER = KeysetOrder(
    AUDIT_ORDER.kind,
    (AuditEventPatient.occurred_at, AuditEventPatient.audit_event_id),
    descending=True,
    decoders=AUDIT_ORDER.decoders,
)


def audit_row_of(patient_row: Any) -> ColumnElement[bool]:
    """The audit row an audit_event_patients row (or a page of them) points at: by id and time,
    so the join reads the one partition of its month."""
    condition: ColumnElement[bool] = (AuditEvent.id == patient_row.audit_event_id) & (
        AuditEvent.occurred_at == patient_row.occurred_at
    )
    return condition


def _patient_rows(
    tenant_id: str | None, patient_id: uuid.UUID, filter_: AuditEventFilter
) -> Select[Any]:
    """The audit_event_patients rows of ``patient_id`` the filter takes."""
    return select(AuditEventPatient).where(
        AuditEventPatient.tenant_id == tenant_id,
        AuditEventPatient.patient_id == patient_id,
        *_in_range(AuditEventPatient.occurred_at, filter_),
    )


def page_statement(tenant_id: str | None, filter_: AuditEventFilter, after: bool) -> Select[Any]:
    """A page of the tenant's audit rows the filter takes, newest first (bench/audit_scale.py
    runs it too)."""
    # Both tables are partitioned by month: see paged's size_in_text.
    if filter_.patient_id is None:
        return paged(_filtered(tenant_id, filter_), AUDIT_ORDER, after, size_in_text=True)
    keys = paged(
        _patient_rows(tenant_id, filter_.patient_id, filter_).with_only_columns(
            *_PATIENT_ORDER.columns
        ),
        _PATIENT_ORDER,
        after,
        size_in_text=True,
    ).subquery("page")
    return (
        select(*AuditEvent.__table__.c)
        .join(keys, audit_row_of(keys.c))
        .order_by(keys.c.occurred_at.desc(), keys.c.audit_event_id.desc())
    )


async def audit_event_page(
    session: Reader, viewer: Viewer, filter_: AuditEventFilter, page: PageRequest
) -> list[FetchedRow]:
    statement = page_statement(viewer.tenant_id, filter_, page.after is not None)
    return fetched_rows(await session.execute(statement, page_parameters(page)))


async def count_audit_events(session: Reader, viewer: Viewer, filter_: AuditEventFilter) -> int:
    if filter_.patient_id is None:
        statement = _filtered(viewer.tenant_id, filter_)
    else:
        statement = _patient_rows(viewer.tenant_id, filter_.patient_id, filter_)
    return (await session.execute(statement.with_only_columns(func.count()))).scalar_one()
