"""Medical record reads, and the rows that hang off a record."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import any_, func, select

from app.access import (
    readable_attachments,
    readable_diagnoses,
    readable_records,
    readable_status_events,
)
from app.pagination import (
    KeysetOrder,
    count_per_parent,
    first_rows_per_parent,
    page_statement,
    parse_datetime,
    parse_uuid,
    uuid_array,
)
from models import Attachment, Diagnosis, MedicalRecord, RecordStatusEvent

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy import Row, Select
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import InstrumentedAttribute

    from app.pagination import PageRequest
    from app.viewer import Viewer
    from models.enums import RecordStatus, RecordType

RECORD_ORDER = KeysetOrder(
    "records",
    (MedicalRecord.visit_date, MedicalRecord.id),
    descending=True,
    decoders=(parse_datetime, parse_uuid),
)

RecordParent = Literal["patient", "provider"]

_COLUMNS = tuple(MedicalRecord.__table__.c)
_PARENT_COLUMNS: dict[RecordParent, InstrumentedAttribute[Any]] = {
    "patient": MedicalRecord.patient_id,
    "provider": MedicalRecord.provider_id,
}


@dataclass(frozen=True, slots=True)
class RecordListFilter:
    statuses: tuple[RecordStatus, ...] | None = None
    record_types: tuple[RecordType, ...] | None = None
    # Half-open range: visitedAfter <= visit_date < visitedBefore.
    visited_after: datetime | None = None
    visited_before: datetime | None = None


def _filtered(viewer: Viewer, filter_: RecordListFilter) -> Select[Any]:
    statement = select(*_COLUMNS).where(readable_records(viewer))
    if filter_.statuses is not None:
        statement = statement.where(MedicalRecord.status.in_(filter_.statuses))
    if filter_.record_types is not None:
        statement = statement.where(MedicalRecord.record_type.in_(filter_.record_types))
    if filter_.visited_after is not None:
        statement = statement.where(MedicalRecord.visit_date >= filter_.visited_after)
    if filter_.visited_before is not None:
        statement = statement.where(MedicalRecord.visit_date < filter_.visited_before)
    return statement


async def records_by_ids(
    session: AsyncSession, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    statement = select(*_COLUMNS).where(
        readable_records(viewer), MedicalRecord.id == any_(uuid_array("ids", ids))
    )
    return list((await session.execute(statement)).all())


async def record_page(
    session: AsyncSession, viewer: Viewer, filter_: RecordListFilter, page: PageRequest
) -> list[Row[Any]]:
    statement = page_statement(_filtered(viewer, filter_), RECORD_ORDER, page)
    return list((await session.execute(statement)).all())


async def count_records(session: AsyncSession, viewer: Viewer, filter_: RecordListFilter) -> int:
    statement = _filtered(viewer, filter_).with_only_columns(func.count())
    return (await session.execute(statement)).scalar_one()


async def records_of_parents(
    session: AsyncSession,
    viewer: Viewer,
    parent: RecordParent,
    parent_ids: Sequence[uuid.UUID],
    filter_: RecordListFilter,
    page: PageRequest,
) -> dict[uuid.UUID, list[Row[Any]]]:
    return await first_rows_per_parent(
        session, _filtered(viewer, filter_), _PARENT_COLUMNS[parent], parent_ids, RECORD_ORDER, page
    )


async def count_records_of_parents(
    session: AsyncSession,
    viewer: Viewer,
    parent: RecordParent,
    parent_ids: Sequence[uuid.UUID],
    filter_: RecordListFilter,
) -> dict[uuid.UUID, int]:
    return await count_per_parent(
        session, _filtered(viewer, filter_), _PARENT_COLUMNS[parent], parent_ids
    )


async def _children_of_records(
    session: AsyncSession, statement: Select[Any], record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row[Any]]]:
    rows = (await session.execute(statement)).all()
    grouped: dict[uuid.UUID, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        grouped[row.record_id].append(row)
    return {record_id: grouped.get(record_id, []) for record_id in record_ids}


async def diagnoses_of_records(
    session: AsyncSession, viewer: Viewer, record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row[Any]]]:
    statement = (
        select(*Diagnosis.__table__.c)
        .where(
            readable_diagnoses(viewer), Diagnosis.record_id == any_(uuid_array("ids", record_ids))
        )
        .order_by(Diagnosis.record_id, Diagnosis.created_at, Diagnosis.id)
    )
    return await _children_of_records(session, statement, record_ids)


async def attachments_of_records(
    session: AsyncSession, viewer: Viewer, record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row[Any]]]:
    statement = (
        select(*Attachment.__table__.c)
        .where(
            readable_attachments(viewer),
            Attachment.record_id == any_(uuid_array("ids", record_ids)),
        )
        .order_by(Attachment.record_id, Attachment.created_at, Attachment.id)
    )
    return await _children_of_records(session, statement, record_ids)


async def status_events_of_records(
    session: AsyncSession, viewer: Viewer, record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row[Any]]]:
    statement = (
        select(*RecordStatusEvent.__table__.c)
        .where(
            readable_status_events(viewer),
            RecordStatusEvent.record_id == any_(uuid_array("ids", record_ids)),
        )
        .order_by(RecordStatusEvent.record_id, RecordStatusEvent.sequence)
    )
    return await _children_of_records(session, statement, record_ids)


async def diagnoses_by_ids(
    session: AsyncSession, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    statement = select(*Diagnosis.__table__.c).where(
        readable_diagnoses(viewer), Diagnosis.id == any_(uuid_array("ids", ids))
    )
    return list((await session.execute(statement)).all())


async def attachments_by_ids(
    session: AsyncSession, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    statement = select(*Attachment.__table__.c).where(
        readable_attachments(viewer), Attachment.id == any_(uuid_array("ids", ids))
    )
    return list((await session.execute(statement)).all())
