"""The data ``medrec dev`` starts with: two seeded tenants and a login per role in each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.data.commands.common import SUBJECT_ALREADY_LINKED, unique_violations
from app.ops.seed import seed_tenant
from models import MedicalRecord, Patient, Provider, RecordStatusEvent
from models.enums import RecordStatus

DEMO_TENANTS: Final = ("demo-north", "demo-south")
DEMO_PATIENTS_PER_TENANT: Final = 40

# What a patient may read of its own records (the contract: FINALIZED or AMENDED).
_PATIENT_VISIBLE: Final = (RecordStatus.FINALIZED, RecordStatus.AMENDED)


@dataclass(frozen=True)
class DemoLogin:
    role: str
    subject: str
    tenant_id: str
    description: str


def _subject(role: str, tenant_id: str) -> str:
    return f"demo-{role}-{tenant_id.removeprefix('demo-')}"


async def load_demo_data(session: AsyncSession) -> list[DemoLogin]:
    """Seed the demo tenants that have no patients yet and link the demo logins; no commit.

    The data persists between dev runs, so a tenant that already has patients is left as it is.
    """
    logins: list[DemoLogin] = []
    for tenant_id in DEMO_TENANTS:
        has_patients = await session.scalar(select(exists().where(Patient.tenant_id == tenant_id)))
        if not has_patients:
            await seed_tenant(session, tenant_id=tenant_id, patients=DEMO_PATIENTS_PER_TENANT)
        provider = await _link_provider(session, tenant_id)
        patient = await _link_patient(session, tenant_id, provider)
        logins += [
            DemoLogin(
                role="admin",
                subject=_subject("admin", tenant_id),
                tenant_id=tenant_id,
                description=f"Administrator of {tenant_id}",
            ),
            DemoLogin(
                role="provider",
                subject=_subject("provider", tenant_id),
                tenant_id=tenant_id,
                description=f"Dr. {provider.given_name} {provider.family_name} "
                f"({provider.specialty or 'no specialty'}), NPI {provider.npi}, in {tenant_id}",
            ),
            DemoLogin(
                role="patient",
                subject=_subject("patient", tenant_id),
                tenant_id=tenant_id,
                description=f"{patient.given_name} {patient.family_name}, MRN {patient.mrn}, "
                f"patient of Dr. {provider.family_name}, in {tenant_id}",
            ),
        ]
    return logins


async def _link_provider(session: AsyncSession, tenant_id: str) -> Provider:
    subject = _subject("provider", tenant_id)
    linked = await session.scalar(
        select(Provider).where(Provider.tenant_id == tenant_id, Provider.cognito_sub == subject)
    )
    if linked is not None:
        return linked
    # The provider with the most patients who have records a patient login can see.
    patients_with_visible_records = (
        select(func.count(func.distinct(Patient.id)))
        .join(
            MedicalRecord,
            (MedicalRecord.tenant_id == Patient.tenant_id)
            & (MedicalRecord.patient_id == Patient.id),
        )
        .where(
            Patient.tenant_id == tenant_id,
            Patient.primary_provider_id == Provider.id,
            MedicalRecord.status.in_(_PATIENT_VISIBLE),
        )
        .scalar_subquery()
    )
    provider = await session.scalar(
        select(Provider)
        .where(Provider.tenant_id == tenant_id, Provider.active)
        .order_by(patients_with_visible_records.desc(), Provider.npi)
        .limit(1)
    )
    if provider is None:
        raise RuntimeError(f"demo tenant {tenant_id!r} has patients but no active provider")
    previous_subject = provider.cognito_sub
    provider.cognito_sub = subject
    with unique_violations(SUBJECT_ALREADY_LINKED):
        await session.flush()
    if previous_subject is not None:
        # The seeded history names the provider's old subject; keep it naming the same person.
        await session.execute(
            update(RecordStatusEvent)
            .where(
                RecordStatusEvent.tenant_id == tenant_id,
                RecordStatusEvent.changed_by == previous_subject,
            )
            .values(changed_by=subject)
        )
    return provider


async def _link_patient(session: AsyncSession, tenant_id: str, provider: Provider) -> Patient:
    subject = _subject("patient", tenant_id)
    linked = await session.scalar(
        select(Patient).where(Patient.tenant_id == tenant_id, Patient.cognito_sub == subject)
    )
    if linked is not None:
        return linked
    visible_records = (
        select(func.count())
        .where(
            MedicalRecord.tenant_id == tenant_id,
            MedicalRecord.patient_id == Patient.id,
            MedicalRecord.status.in_(_PATIENT_VISIBLE),
        )
        .scalar_subquery()
    )
    patient = await session.scalar(
        select(Patient)
        .where(
            Patient.tenant_id == tenant_id,
            Patient.primary_provider_id == provider.id,
            Patient.cognito_sub.is_(None),
            visible_records > 0,
        )
        .order_by(visible_records.desc(), Patient.mrn)
        .limit(1)
    )
    if patient is None:
        raise RuntimeError(
            f"demo tenant {tenant_id!r}: provider {provider.id} has no patient with finalized "
            "records to link"
        )
    patient.cognito_sub = subject
    with unique_violations(SUBJECT_ALREADY_LINKED):
        await session.flush()
    return patient
