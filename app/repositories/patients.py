"""Patient reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from app.access import readable_patients
from app.pagination import (
    KeysetOrder,
    count_per_parent,
    first_rows_per_parent,
    page_statement,
    parse_datetime,
    parse_uuid,
)
from app.repositories.batched import rows_by_ids
from models import Patient

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Row, Select

    from app.database import Reader
    from app.pagination import PageRequest
    from app.viewer import Viewer

PATIENT_ORDER = KeysetOrder(
    "patients",
    (Patient.created_at, Patient.id),
    descending=True,
    decoders=(parse_datetime, parse_uuid),
)

_COLUMNS = tuple(Patient.__table__.c)


@dataclass(frozen=True, slots=True)
class PatientListFilter:
    search: str | None = None
    primary_provider_id: uuid.UUID | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(viewer: Viewer, filter_: PatientListFilter) -> Select[Any]:
    statement = select(*_COLUMNS).where(readable_patients(viewer))
    if filter_.search:
        prefix = _escape_like(filter_.search.lower()) + "%"
        # lower(col) LIKE 'x%' matches the text_pattern_ops prefix indexes.
        statement = statement.where(
            or_(
                *(
                    func.lower(column).like(prefix, escape="\\")
                    for column in (Patient.given_name, Patient.family_name, Patient.mrn)
                )
            )
        )
    if filter_.primary_provider_id is not None:
        statement = statement.where(Patient.primary_provider_id == filter_.primary_provider_id)
    return statement


async def patients_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    return await rows_by_ids(session, Patient, readable_patients(viewer), ids)


async def patient_page(
    session: Reader, viewer: Viewer, filter_: PatientListFilter, page: PageRequest
) -> list[Row[Any]]:
    statement = page_statement(_filtered(viewer, filter_), PATIENT_ORDER, page)
    return list((await session.execute(statement)).all())


async def count_patients(session: Reader, viewer: Viewer, filter_: PatientListFilter) -> int:
    statement = _filtered(viewer, filter_).with_only_columns(func.count())
    return (await session.execute(statement)).scalar_one()


async def patients_of_providers(
    session: Reader,
    viewer: Viewer,
    provider_ids: Sequence[uuid.UUID],
    filter_: PatientListFilter,
    page: PageRequest,
) -> dict[uuid.UUID, list[Row[Any]]]:
    return await first_rows_per_parent(
        session,
        _filtered(viewer, filter_),
        Patient.primary_provider_id,
        provider_ids,
        PATIENT_ORDER,
        page,
    )


async def count_patients_of_providers(
    session: Reader,
    viewer: Viewer,
    provider_ids: Sequence[uuid.UUID],
    filter_: PatientListFilter,
) -> dict[uuid.UUID, int]:
    return await count_per_parent(
        session, _filtered(viewer, filter_), Patient.primary_provider_id, provider_ids
    )
