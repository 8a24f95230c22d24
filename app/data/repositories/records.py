"""Medical record reads, and the rows that hang off a record.

Statements are built once per role and shape (which filters are set, whether a cursor is given)
and run with the viewer's, the filter's and the page's values as bind parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from sqlalchemy import bindparam, func, literal_column, select

from app.data.database import fetched_rows
from app.data.pagination import (
    KeysetOrder,
    RowsPerParent,
    count_per_parent,
    count_per_parent_statement,
    first_rows_per_parent,
    page_parameters,
    paged,
    parse_datetime,
    parse_uuid,
    rows_per_parent_statement,
)
from app.data.repositories.batched import rows_by_ids, rows_by_parent
from app.domain.access import (
    readable_attachments_for,
    readable_columns,
    readable_diagnoses_for,
    readable_records_for,
    readable_status_events_for,
    viewer_parameters,
)
from app.domain.viewer import effective_role
from models import Attachment, Diagnosis, MedicalRecord, RecordStatusEvent, table_of

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy import ColumnElement, Select
    from sqlalchemy.orm import InstrumentedAttribute

    from app.data.database import FetchedRow, Reader
    from app.data.pagination import PageRequest
    from app.domain.viewer import Viewer
    from models.enums import RecordStatus, RecordType, Role

RECORD_ORDER = KeysetOrder(
    "records",
    (MedicalRecord.visit_date, MedicalRecord.id),
    descending=True,
    decoders=(parse_datetime, parse_uuid),
)

RecordParent = Literal["patient", "provider"]

# Lists read the JSON columns only for queries that select them: decoding them costs more than
# reading all the other columns of a record together.
_JSON_COLUMNS = frozenset({"vital_signs", "prescriptions", "lab_results"})
# Lists of a record's children, oldest first.
DIAGNOSIS_ORDER = (Diagnosis.created_at, Diagnosis.id)
ATTACHMENT_ORDER = (Attachment.created_at, Attachment.id)
_PARENT_COLUMNS: dict[RecordParent, InstrumentedAttribute[Any]] = {
    "patient": MedicalRecord.patient_id,
    "provider": MedicalRecord.provider_id,
}

# The filters of RecordListFilter run with a bind parameter, by its name.
_FILTERS: dict[str, ColumnElement[bool]] = {
    "visited_after": MedicalRecord.visit_date >= bindparam("visited_after"),
    "visited_before": MedicalRecord.visit_date < bindparam("visited_before"),
}
# A key of a statement (``RecordListFilter.shape``): the bound filters' names, and the statuses
# and record types wanted, which the statement writes into its text. PostgreSQL then knows how
# rare they are when it plans, and keeps one plan per set of values instead of planning each run
# anew (a rare status wants another plan than a common one). A handful of values: few sets.
FilterShape: TypeAlias = "frozenset[str | tuple[str, str]]"
# The filters written into the statement, by the name of their values in a FilterShape.
_LISTED: dict[str, InstrumentedAttribute[Any]] = {
    "statuses": MedicalRecord.status,
    "record_types": MedicalRecord.record_type,
}


@dataclass(frozen=True, slots=True)
class RecordListFilter:
    statuses: tuple[RecordStatus, ...] | None = None
    record_types: tuple[RecordType, ...] | None = None
    # Half-open range: visitedAfter <= visit_date < visitedBefore.
    visited_after: datetime | None = None
    visited_before: datetime | None = None

    def parameters(self) -> dict[str, Any]:
        """The values of the bound filters that are set, by parameter name (see ``_FILTERS``)."""
        values = {"visited_after": self.visited_after, "visited_before": self.visited_before}
        return {name: value for name, value in values.items() if value is not None}

    def shape(self) -> FilterShape:
        """The key of the statements of this filter (``FilterShape``)."""
        listed = (("statuses", self.statuses), ("record_types", self.record_types))
        values = {(name, value.value) for name, wanted in listed for value in wanted or ()}
        return frozenset((*self.parameters(), *values))


def _one_of(column: InstrumentedAttribute[Any], labels: list[str]) -> ColumnElement[bool]:
    """``column IN (...)`` of enum labels written into the statement."""
    # Labels of our enums (RecordListFilter.shape), never a caller's text: checked all the same.
    if not all(label.isidentifier() for label in labels):
        raise ValueError(f"not enum labels: {labels!r}")
    return column.in_([literal_column(f"'{label}'") for label in sorted(labels)])


@cache
def filtered_statement(role: Role | None, filters: FilterShape, with_json: bool) -> Select[Any]:
    columns = readable_columns(table_of(MedicalRecord), role)
    if not with_json:
        columns = tuple(column for column in columns if column.key not in _JSON_COLUMNS)
    predicates = [predicate for name, predicate in _FILTERS.items() if name in filters]
    for name, column in _LISTED.items():
        labels = [key[1] for key in filters if isinstance(key, tuple) and key[0] == name]
        if labels:
            predicates.append(_one_of(column, labels))
    return select(*columns).where(readable_records_for(role), *predicates)


@cache
def page_statement(
    role: Role | None, filters: FilterShape, after: bool, with_json: bool
) -> Select[Any]:
    return paged(filtered_statement(role, filters, with_json), RECORD_ORDER, after)


@cache
def count_statement(role: Role | None, filters: FilterShape) -> Select[int]:
    return filtered_statement(role, filters, False).with_only_columns(func.count())


@cache
def _of_parents(
    role: Role | None, filters: FilterShape, parent: RecordParent, after: bool, with_json: bool
) -> RowsPerParent:
    return rows_per_parent_statement(
        filtered_statement(role, filters, with_json), _PARENT_COLUMNS[parent], RECORD_ORDER, after
    )


@cache
def _count_of_parents(role: Role | None, filters: FilterShape, parent: RecordParent) -> Select[Any]:
    return count_per_parent_statement(
        filtered_statement(role, filters, False), _PARENT_COLUMNS[parent]
    )


async def records_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[FetchedRow]:
    return await rows_by_ids(session, viewer, MedicalRecord, readable_records_for, ids)


async def record_page(
    session: Reader,
    viewer: Viewer,
    filter_: RecordListFilter,
    page: PageRequest,
    *,
    with_json: bool = True,
) -> list[FetchedRow]:
    """``with_json=False`` leaves out the _JSON_COLUMNS."""
    filters = filter_.parameters()
    statement = page_statement(
        effective_role(viewer), filter_.shape(), page.after is not None, with_json
    )
    parameters = {**viewer_parameters(viewer), **filters, **page_parameters(page)}
    return fetched_rows(await session.execute(statement, parameters))


async def count_records(session: Reader, viewer: Viewer, filter_: RecordListFilter) -> int:
    filters = filter_.parameters()
    statement = count_statement(effective_role(viewer), filter_.shape())
    return (await session.execute(statement, {**viewer_parameters(viewer), **filters})).scalar_one()


async def records_of_parents(
    session: Reader,
    viewer: Viewer,
    parent: RecordParent,
    parent_ids: Sequence[uuid.UUID],
    filter_: RecordListFilter,
    page: PageRequest,
    *,
    with_json: bool = True,
) -> dict[uuid.UUID, list[FetchedRow]]:
    """``with_json=False`` leaves out the _JSON_COLUMNS."""
    filters = filter_.parameters()
    statement = _of_parents(
        effective_role(viewer), filter_.shape(), parent, page.after is not None, with_json
    )
    parameters = {**viewer_parameters(viewer), **filters, **page_parameters(page)}
    return await first_rows_per_parent(session, statement, parameters, parent_ids)


async def count_records_of_parents(
    session: Reader,
    viewer: Viewer,
    parent: RecordParent,
    parent_ids: Sequence[uuid.UUID],
    filter_: RecordListFilter,
) -> dict[uuid.UUID, int]:
    filters = filter_.parameters()
    statement = _count_of_parents(effective_role(viewer), filter_.shape(), parent)
    return await count_per_parent(
        session, statement, {**viewer_parameters(viewer), **filters}, parent_ids
    )


async def diagnoses_of_records(
    session: Reader, viewer: Viewer, record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[FetchedRow]]:
    return await rows_by_parent(
        session,
        viewer,
        Diagnosis.record_id,
        readable_diagnoses_for,
        record_ids,
        order_by=DIAGNOSIS_ORDER,
    )


async def attachments_of_records(
    session: Reader, viewer: Viewer, record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[FetchedRow]]:
    return await rows_by_parent(
        session,
        viewer,
        Attachment.record_id,
        readable_attachments_for,
        record_ids,
        order_by=ATTACHMENT_ORDER,
    )


async def status_events_of_records(
    session: Reader, viewer: Viewer, record_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[FetchedRow]]:
    """Oldest first: the stream's sequence is the order of the changes."""
    return await rows_by_parent(
        session,
        viewer,
        RecordStatusEvent.record_id,
        readable_status_events_for,
        record_ids,
        order_by=(RecordStatusEvent.sequence,),
    )


async def diagnoses_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[FetchedRow]:
    return await rows_by_ids(session, viewer, Diagnosis, readable_diagnoses_for, ids)


async def attachments_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[FetchedRow]:
    return await rows_by_ids(session, viewer, Attachment, readable_attachments_for, ids)
