"""Creating and updating patients (admins and providers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select

from app.data.commands.common import (
    SUBJECT_ALREADY_LINKED,
    check_version,
    locked_row,
    unique_violations,
    versioned_update,
)
from app.domain.access import (
    readable_patients_for,
    readable_providers_for,
    require_writer,
    viewer_parameters,
)
from app.domain.errors import NotFound
from app.domain.viewer import effective_role
from models import Patient, Provider, table_of
from models.enums import Role, Sex

if TYPE_CHECKING:
    from datetime import date

    from sqlalchemy import Row, Select
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.domain.viewer import Viewer

# As in app/data/commands/records.py: statements built once, values as parameters, Core writes.
_PATIENTS = table_of(Patient)

_UNIQUE = {
    "uq_patients_tenant_id_mrn": "input.mrn: a patient with this MRN already exists",
    **SUBJECT_ALREADY_LINKED,
}


@dataclass(frozen=True, slots=True)
class NewPatient:
    mrn: str
    given_name: str
    family_name: str
    date_of_birth: date
    sex: Sex
    # The optional columns the caller gave (email, phone, preferred language...), validated.
    details: dict[str, Any]
    primary_provider_id: uuid.UUID | None
    cognito_sub: str | None


@dataclass(frozen=True, slots=True)
class PatientChanges:
    patient_id: uuid.UUID
    expected_version: int
    # Only the columns the caller gave; None in a value clears that column.
    values: dict[str, Any] = field(default_factory=dict)


@cache
def _provider_statement(role: Role | None) -> Select[*tuple[Any, ...]]:
    return select(Provider.id).where(
        readable_providers_for(role), Provider.id == bindparam("provider_id")
    )


@cache
def _lock_statement(role: Role | None) -> Select[*tuple[Any, ...]]:
    return (
        select(Patient.id, Patient.version)
        .where(readable_patients_for(role), Patient.id == bindparam("patient_id"))
        .with_for_update()
    )


_INSERT = insert(_PATIENTS).returning(*_PATIENTS.c)
_BUMP = versioned_update(_PATIENTS, "patient_id")


async def _require_provider(
    connection: AsyncConnection, viewer: Viewer, provider_id: uuid.UUID
) -> None:
    found = await connection.scalar(
        _provider_statement(effective_role(viewer)),
        {**viewer_parameters(viewer), "provider_id": provider_id},
    )
    if found is None:
        raise NotFound("input.primaryProviderId: provider not found")


async def create_patient(connection: AsyncConnection, viewer: Viewer, new: NewPatient) -> Row[Any]:
    require_writer(viewer)
    if new.primary_provider_id is not None:
        await _require_provider(connection, viewer, new.primary_provider_id)
    with unique_violations(_UNIQUE):
        return (
            await connection.execute(
                _INSERT,
                {
                    "tenant_id": viewer.tenant_id,
                    "mrn": new.mrn,
                    "given_name": new.given_name,
                    "family_name": new.family_name,
                    "date_of_birth": new.date_of_birth,
                    "sex": new.sex,
                    **new.details,
                    "primary_provider_id": new.primary_provider_id,
                    "cognito_sub": new.cognito_sub,
                },
            )
        ).one()


async def update_patient(
    connection: AsyncConnection, viewer: Viewer, changes: PatientChanges
) -> Row[Any]:
    require_writer(viewer)
    current = await locked_row(
        connection,
        _lock_statement(effective_role(viewer)),
        {**viewer_parameters(viewer), "patient_id": changes.patient_id},
        "input.id",
        "patient",
    )
    check_version(current, changes.expected_version, "patient")
    provider_id = changes.values.get("primary_provider_id")
    if provider_id is not None:
        await _require_provider(connection, viewer, provider_id)
    return (await connection.execute(_BUMP, {**changes.values, "patient_id": current.id})).one()
