"""Patient reads, built once per role and shape like the record reads (records.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, func, or_, select

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
from app.data.repositories.batched import rows_by_ids
from app.domain.access import readable_patients_for, viewer_parameters
from app.domain.viewer import effective_role
from models import Patient

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import ColumnElement, Select

    from app.data.database import FetchedRow, Reader
    from app.data.pagination import PageRequest
    from app.domain.viewer import Viewer
    from models.enums import Role

PATIENT_ORDER = KeysetOrder(
    "patients",
    (Patient.created_at, Patient.id),
    descending=True,
    decoders=(parse_datetime, parse_uuid),
)

_COLUMNS = tuple(Patient.__table__.c)


# Each filter of PatientListFilter, by the name of its bind parameter.
_FILTERS: dict[str, ColumnElement[bool]] = {
    # lower(col) LIKE 'x%' matches the text_pattern_ops prefix indexes.
    "search_prefix": or_(
        *(
            func.lower(column).like(bindparam("search_prefix", type_=String()), escape="\\")
            for column in (Patient.given_name, Patient.family_name, Patient.mrn)
        )
    ),
    "primary_provider_id": Patient.primary_provider_id == bindparam("primary_provider_id"),
}


@dataclass(frozen=True, slots=True)
class PatientListFilter:
    search: str | None = None
    primary_provider_id: uuid.UUID | None = None

    def parameters(self) -> dict[str, Any]:
        """The values of the filters that are set, by bind parameter name (see ``_FILTERS``)."""
        parameters: dict[str, Any] = {}
        if self.search:
            parameters["search_prefix"] = _escape_like(self.search.lower()) + "%"
        if self.primary_provider_id is not None:
            parameters["primary_provider_id"] = self.primary_provider_id
        return parameters


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@cache
def filtered_statement(role: Role | None, filters: frozenset[str]) -> Select[Any]:
    return select(*_COLUMNS).where(
        readable_patients_for(role),
        *(predicate for name, predicate in _FILTERS.items() if name in filters),
    )


@cache
def page_statement(role: Role | None, filters: frozenset[str], after: bool) -> Select[Any]:
    return paged(filtered_statement(role, filters), PATIENT_ORDER, after)


@cache
def count_statement(role: Role | None, filters: frozenset[str]) -> Select[int]:
    return filtered_statement(role, filters).with_only_columns(func.count())


@cache
def _of_providers(role: Role | None, filters: frozenset[str], after: bool) -> RowsPerParent:
    return rows_per_parent_statement(
        filtered_statement(role, filters), Patient.primary_provider_id, PATIENT_ORDER, after
    )


@cache
def _count_of_providers(role: Role | None, filters: frozenset[str]) -> Select[Any]:
    return count_per_parent_statement(
        filtered_statement(role, filters), Patient.primary_provider_id
    )


async def patients_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[FetchedRow]:
    return await rows_by_ids(session, viewer, Patient, readable_patients_for, ids)


async def patient_page(
    session: Reader, viewer: Viewer, filter_: PatientListFilter, page: PageRequest
) -> list[FetchedRow]:
    filters = filter_.parameters()
    statement = page_statement(effective_role(viewer), frozenset(filters), page.after is not None)
    parameters = {**viewer_parameters(viewer), **filters, **page_parameters(page)}
    return fetched_rows(await session.execute(statement, parameters))


async def count_patients(session: Reader, viewer: Viewer, filter_: PatientListFilter) -> int:
    filters = filter_.parameters()
    statement = count_statement(effective_role(viewer), frozenset(filters))
    return (await session.execute(statement, {**viewer_parameters(viewer), **filters})).scalar_one()


async def patients_of_providers(
    session: Reader,
    viewer: Viewer,
    provider_ids: Sequence[uuid.UUID],
    filter_: PatientListFilter,
    page: PageRequest,
) -> dict[uuid.UUID, list[FetchedRow]]:
    filters = filter_.parameters()
    statement = _of_providers(effective_role(viewer), frozenset(filters), page.after is not None)
    parameters = {**viewer_parameters(viewer), **filters, **page_parameters(page)}
    return await first_rows_per_parent(session, statement, parameters, provider_ids)


async def count_patients_of_providers(
    session: Reader,
    viewer: Viewer,
    provider_ids: Sequence[uuid.UUID],
    filter_: PatientListFilter,
) -> dict[uuid.UUID, int]:
    filters = filter_.parameters()
    statement = _count_of_providers(effective_role(viewer), frozenset(filters))
    return await count_per_parent(
        session, statement, {**viewer_parameters(viewer), **filters}, provider_ids
    )
