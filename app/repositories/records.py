"""Medical record reads, and the rows that hang off a record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, select

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
)
from app.repositories.batched import rows_by_ids, rows_by_parent
from models import Attachment, Diagnosis, MedicalRecord, RecordStatusEvent

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy import Row, Select
    from sqlalchemy.orm import InstrumentedAttribute

    from app.database import Reader
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
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    return await rows_by_ids(session, MedicalRecord, readable_records(viewer), ids)


async def record_page(
    session: Reader, viewer: Viewer, filter_: RecordListFilter, page: PageRequest
) -> list[Row[Any]]:
    statement = page_statement(_filtered(viewer, filter_), RECORD_ORDER, page)
    return list((await session.execute(statement)).all())


async def count_records(session: Reader, viewer: Viewer, filter_: RecordListFilter) -> int:
    statement = _filtered(viewer, filter_).with_only_columns(func.count())
    return (await session.execute(statement)).scalar_one()


async def records_of_parents(
    session: Reader,
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
    session: Reader,
    viewer: Viewer,
    parent: RecordParent,
    parent_ids: Sequence[uuid.UUID],
    filter_: RecordListFilter,
) -> dict[uuid.UUID, int]:
    return await count_per_parent(
        session, _filtered(viewer, filter_), _PARENT_COLUMNS[parent], parent_ids
    )


async def diagnoses_of_records(
    session: Reader, viewer: Viewer, record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row[Any]]]:
    return await rows_by_parent(
        session,
        Diagnosis.record_id,
        readable_diagnoses(viewer),
        record_ids,
        order_by=(Diagnosis.created_at, Diagnosis.id),
    )


async def attachments_of_records(
    session: Reader, viewer: Viewer, record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row[Any]]]:
    return await rows_by_parent(
        session,
        Attachment.record_id,
        readable_attachments(viewer),
        record_ids,
        order_by=(Attachment.created_at, Attachment.id),
    )


async def status_events_of_records(
    session: Reader, viewer: Viewer, record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Row[Any]]]:
    """Oldest first: the stream's sequence is the order of the changes."""
    return await rows_by_parent(
        session,
        RecordStatusEvent.record_id,
        readable_status_events(viewer),
        record_ids,
        order_by=(RecordStatusEvent.sequence,),
    )


async def diagnoses_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    return await rows_by_ids(session, Diagnosis, readable_diagnoses(viewer), ids)


async def attachments_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    return await rows_by_ids(session, Attachment, readable_attachments(viewer), ids)
