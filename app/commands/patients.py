"""Creating and updating patients (admins and providers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from app.access import readable_patients, readable_providers, require_writer
from app.commands.common import check_version, locked_row, unique_violations
from app.errors import NotFound
from models import Patient, Provider
from models.enums import Sex

if TYPE_CHECKING:
    from datetime import date

    from sqlalchemy import Row
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.viewer import Viewer

_UNIQUE = {
    "uq_patients_tenant_id_mrn": "input.mrn: a patient with this MRN already exists",
    "uq_patients_tenant_cognito_sub": "input.cognitoSub: already linked to another patient",
}


@dataclass(frozen=True, slots=True)
class NewPatient:
    mrn: str
    given_name: str
    family_name: str
    date_of_birth: date
    sex: Sex
    email: str | None
    phone: str | None
    primary_provider_id: uuid.UUID | None
    cognito_sub: str | None


@dataclass(frozen=True, slots=True)
class PatientChanges:
    patient_id: uuid.UUID
    expected_version: int
    # Only the columns the caller gave; None in a value clears that column.
    values: dict[str, Any] = field(default_factory=dict)


async def _require_provider(session: AsyncSession, viewer: Viewer, provider_id: uuid.UUID) -> None:
    found = await session.scalar(
        select(Provider.id).where(readable_providers(viewer), Provider.id == provider_id)
    )
    if found is None:
        raise NotFound("input.primaryProviderId: provider not found")


async def create_patient(session: AsyncSession, viewer: Viewer, new: NewPatient) -> Row[Any]:
    require_writer(viewer)
    if new.primary_provider_id is not None:
        await _require_provider(session, viewer, new.primary_provider_id)
    with unique_violations(_UNIQUE):
        return (
            await session.execute(
                insert(Patient)
                .values(
                    tenant_id=viewer.tenant_id,
                    mrn=new.mrn,
                    given_name=new.given_name,
                    family_name=new.family_name,
                    date_of_birth=new.date_of_birth,
                    sex=new.sex,
                    email=new.email,
                    phone=new.phone,
                    primary_provider_id=new.primary_provider_id,
                    cognito_sub=new.cognito_sub,
                )
                .returning(*Patient.__table__.c)
            )
        ).one()


async def update_patient(
    session: AsyncSession, viewer: Viewer, changes: PatientChanges
) -> Row[Any]:
    require_writer(viewer)
    current = await locked_row(
        session,
        select(Patient.id, Patient.version)
        .where(readable_patients(viewer), Patient.id == changes.patient_id)
        .with_for_update(),
        "input.id",
        "patient",
    )
    check_version(current, changes.expected_version, "patient")
    provider_id = changes.values.get("primary_provider_id")
    if provider_id is not None:
        await _require_provider(session, viewer, provider_id)
    return (
        await session.execute(
            update(Patient)
            .where(Patient.id == current.id)
            .values(**changes.values, version=Patient.version + 1, updated_at=func.now())
            .returning(*Patient.__table__.c)
        )
    ).one()
