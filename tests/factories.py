"""Rows for tests, inserted and committed with SQLAlchemy Core (the API reads them separately)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from app.domain.viewer import Viewer
from models import (
    Attachment,
    BreakGlassGrant,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
    RecordStatusEvent,
)
from models.enums import AttachmentStatus, DiagnosisType, RecordStatus, RecordType, Role, Sex

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

_counter = itertools.count(1)
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def admin_viewer(tenant_id: str) -> Viewer:
    """An admin of ``tenant_id`` as a verified token makes it, for calls below the API."""
    return Viewer(
        subject="auditor",
        roles=frozenset({Role.ADMIN}),
        tenant_id=tenant_id,
        provider_id=None,
        patient_id=None,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


def _npi(serial: int) -> str:
    body = f"{1000000000 + serial:010d}"[1:]  # nine digits
    digits = [int(d) for d in "80840" + body]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if index % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return body + str((10 - total % 10) % 10)


class Factory:
    """Creates rows in one tenant; each test gets a tenant of its own."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str) -> None:
        self.sessionmaker = sessionmaker
        self.tenant_id = tenant_id

    async def _insert(self, table: Any, values: dict[str, Any]) -> dict[str, Any]:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(insert(table), [values])
        return values

    async def provider(self, **overrides: Any) -> dict[str, Any]:
        return await self._insert(Provider, self.provider_values() | overrides)

    def provider_values(self) -> dict[str, Any]:
        """A new provider row's values, for tests that insert it themselves."""
        n = next(_counter)
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "tenant_id": self.tenant_id,
            "npi": _npi(n),
            "given_name": f"Given{n}",
            "family_name": f"Family{n:05d}",
            "specialty": "Family Medicine",
            "email": f"provider{n}@clinic.test",
            "created_at": BASE_TIME + timedelta(minutes=n),
        }
        return values

    async def patient(self, **overrides: Any) -> dict[str, Any]:
        return await self._insert(Patient, self.patient_values() | overrides)

    def patient_values(self) -> dict[str, Any]:
        """A new patient row's values, for tests that insert it themselves."""
        n = next(_counter)
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "tenant_id": self.tenant_id,
            "mrn": f"MRN{n:07d}",
            "given_name": f"Pat{n}",
            "family_name": f"Ient{n}",
            "date_of_birth": date(1980, 1, 1) + timedelta(days=n),
            "sex": Sex.FEMALE,
            "email": f"patient{n}@mail.test",
            "phone": "+15555550100",
            "created_at": BASE_TIME + timedelta(minutes=n),
            "updated_at": BASE_TIME + timedelta(minutes=n),
        }
        return values

    async def record(
        self, patient: dict[str, Any], provider: dict[str, Any], **overrides: Any
    ) -> dict[str, Any]:
        n = next(_counter)
        status = overrides.get("status", RecordStatus.FINALIZED)
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "tenant_id": self.tenant_id,
            "patient_id": patient["id"],
            "provider_id": provider["id"],
            "record_type": RecordType.CONSULTATION,
            "visit_date": BASE_TIME + timedelta(hours=n),
            "chief_complaint": f"complaint {n}",
            "notes": f"notes {n}",
            "vital_signs": {"heartRate": 70, "temperatureC": 36.8, "oxygenSaturation": 98},
            "prescriptions": [
                {"medication": "Metformin", "dosage": "500 mg", "frequency": "twice daily"}
            ],
            "lab_results": [{"test": "HbA1c", "value": "6.9", "unit": "%", "abnormal": True}],
            "status": status,
            "finalized_at": None if status is RecordStatus.DRAFT else BASE_TIME,
        }
        return await self._insert(MedicalRecord, values | overrides)

    async def diagnosis(self, record: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        n = next(_counter)
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "tenant_id": self.tenant_id,
            "record_id": record["id"],
            "patient_id": record["patient_id"],
            "icd10_code": "E11.9",
            "description": "Type 2 diabetes mellitus without complications",
            "type": DiagnosisType.PRIMARY,
            "created_at": BASE_TIME + timedelta(minutes=n),
        }
        return await self._insert(Diagnosis, values | overrides)

    async def attachment(self, record: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        attachment_id = uuid.uuid4()
        values: dict[str, Any] = {
            "id": attachment_id,
            "tenant_id": self.tenant_id,
            "record_id": record["id"],
            "patient_id": record["patient_id"],
            "file_name": "scan.pdf",
            "content_type": "application/pdf",
            "size_bytes": 1024,
            "checksum_sha256": "0" * 64,
            "status": AttachmentStatus.AVAILABLE,
            "storage_key": (
                f"{self.tenant_id}/medical-records/2026/01/{record['id']}/{attachment_id}/scan.pdf"
            ),
            "uploaded_at": BASE_TIME,
        }
        return await self._insert(Attachment, values | overrides)

    async def status_event(self, record: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "record_id": record["id"],
            "patient_id": record["patient_id"],
            "previous_status": None,
            "status": RecordStatus.DRAFT,
            "changed_by": "someone",
        }
        return await self._insert(RecordStatusEvent, values | overrides)

    async def grant(
        self, patient: dict[str, Any], subject: str, **overrides: Any
    ) -> dict[str, Any]:
        """A break-glass grant for ``patient`` held by ``subject``: active for the next hour
        unless ``expires_at``/``revoked_at`` say otherwise. Times come from this machine's clock,
        which the database shares; the grant's rules compare them with the database's."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "tenant_id": self.tenant_id,
            "patient_id": patient["id"],
            "subject": subject,
            "provider_id": None,
            "reason": "unconscious patient in the emergency room",
            "granted_at": now - timedelta(minutes=1),
            "expires_at": now + timedelta(hours=1),
        }
        return await self._insert(BreakGlassGrant, values | overrides)
