"""Writing medical records and their diagnoses, and moving records through the workflow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, insert, select

from app.data.commands.common import check_version, insert_under, locked_row, versioned_update
from app.domain import validation
from app.domain.access import (
    editable_records_for,
    readable_diagnoses_for,
    readable_patients_for,
    readable_providers_for,
    readable_records_for,
    require_writer,
    viewer_parameters,
)
from app.domain.errors import BadUserInput, Forbidden, NotFound
from app.domain.record_workflow import (
    MAX_DIAGNOSES,
    append_status_event,
    check_finalizable,
    check_permission,
    check_transition,
    require_draft,
    rows_under,
)
from app.domain.viewer import effective_role
from models import Diagnosis, MedicalRecord, Patient, Provider, table_of
from models.enums import DiagnosisType, RecordStatus, RecordType, Role

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Row, Select
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.domain.viewer import Viewer

# Every statement below is built once (per role where it reads), its values bind parameters:
# building a statement and its cache key per call cost more than running it. The writes name
# tables, not mapped classes, so they run as Core statements, without the ORM's bulk DML path.
_RECORDS = table_of(MedicalRecord)
_DIAGNOSES = table_of(Diagnosis)
_RECORD = tuple(_RECORDS.c)


@dataclass(frozen=True, slots=True)
class NewRecord:
    patient_id: uuid.UUID
    provider_id: uuid.UUID | None
    record_type: RecordType
    visit_date: datetime
    # The content columns the caller gave (notes, vital signs, prescriptions...), validated.
    content: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordChanges:
    record_id: uuid.UUID
    expected_version: int
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewDiagnosis:
    record_id: uuid.UUID
    icd10_code: str
    description: str
    type: DiagnosisType


@dataclass(frozen=True, slots=True)
class StatusChange:
    record_id: uuid.UUID
    status: RecordStatus
    expected_version: int
    reason: str | None


@cache
def _lock_statement(role: Role | None) -> Select[*tuple[Any, ...]]:
    return (
        select(*_RECORD, editable_records_for(role).label("may_edit"))
        .where(readable_records_for(role), MedicalRecord.id == bindparam("record_id"))
        .with_for_update(of=MedicalRecord)
    )


async def lock_record(
    connection: AsyncConnection, viewer: Viewer, record_id: uuid.UUID, field: str
) -> Row[Any]:
    """The record, locked, with ``may_edit``: whether this caller may change it (decided in SQL)."""
    return await locked_row(
        connection,
        _lock_statement(effective_role(viewer)),
        {**viewer_parameters(viewer), "record_id": record_id},
        field,
        "record",
    )


def require_editor(record: Row[Any]) -> None:
    if not record.may_edit:
        raise Forbidden("only the record's provider or an admin may change this record")


_BUMP = versioned_update(_RECORDS, "record_id")
_FINALIZE = versioned_update(_RECORDS, "record_id", "finalized_at")


async def _bump(
    connection: AsyncConnection, record_id: uuid.UUID, *, finalizing: bool = False, **values: Any
) -> Row[Any]:
    statement = _FINALIZE if finalizing else _BUMP
    return (await connection.execute(statement, {**values, "record_id": record_id})).one()


def _author(viewer: Viewer, provider_id: uuid.UUID | None) -> uuid.UUID:
    """The provider a new record is written as: providers write as themselves only."""
    if effective_role(viewer) is Role.PROVIDER:
        assert viewer.provider_id is not None  # the provider role requires a linked row
        if provider_id is not None and provider_id != viewer.provider_id:
            raise Forbidden("providers create records as themselves")
        return viewer.provider_id
    if provider_id is None:
        raise BadUserInput("input.providerId: required unless the caller is a provider")
    return provider_id


@cache
def _found_statement(role: Role | None) -> Select[*tuple[Any, ...]]:
    """Both rows in one statement: is each one there for this caller?"""
    return select(
        select(Provider.id)
        .where(readable_providers_for(role), Provider.id == bindparam("provider_id"))
        .scalar_subquery()
        .label("provider"),
        select(Patient.id)
        .where(readable_patients_for(role), Patient.id == bindparam("patient_id"))
        .scalar_subquery()
        .label("patient"),
    )


_INSERT_RECORD = insert(_RECORDS).returning(*_RECORD)


async def create_record(connection: AsyncConnection, viewer: Viewer, new: NewRecord) -> Row[Any]:
    require_writer(viewer)
    provider_id = _author(viewer, new.provider_id)
    found = (
        await connection.execute(
            _found_statement(effective_role(viewer)),
            {**viewer_parameters(viewer), "provider_id": provider_id, "patient_id": new.patient_id},
        )
    ).one()
    if found.provider is None:
        raise NotFound("input.providerId: provider not found")
    if found.patient is None:
        raise NotFound("input.patientId: patient not found")
    record = (
        await connection.execute(
            _INSERT_RECORD,
            {
                "tenant_id": viewer.tenant_id,
                "patient_id": new.patient_id,
                "provider_id": provider_id,
                "record_type": new.record_type,
                "visit_date": new.visit_date,
                # Columns not given take their defaults (null, or no prescriptions...).
                **new.content,
                "status": RecordStatus.DRAFT,
            },
        )
    ).one()
    await append_status_event(
        connection,
        tenant_id=record.tenant_id,
        record_id=record.id,
        patient_id=record.patient_id,
        previous=None,
        status=RecordStatus.DRAFT,
        changed_by=viewer.subject,
        reason=None,
    )
    return record


_CHANGEABLE_PAST_DRAFT = frozenset({"confidentiality"})


async def update_record(
    connection: AsyncConnection, viewer: Viewer, changes: RecordChanges
) -> Row[Any]:
    require_writer(viewer)
    record = await lock_record(connection, viewer, changes.record_id, "input.id")
    require_editor(record)
    check_version(record, changes.expected_version, "record")
    # Past DRAFT, a record's content is fixed; who may read it can still change.
    if changes.values.keys() - _CHANGEABLE_PAST_DRAFT:
        require_draft(record.status)
    follow_up = changes.values.get("follow_up_date")
    if follow_up is not None:
        validation.follow_up_date(
            follow_up, "input.followUpDate", visit_date=record.visit_date.date()
        )
    return await _bump(connection, record.id, **changes.values)


_INSERT_DIAGNOSIS = insert_under(
    _DIAGNOSES,
    ("id", "tenant_id", "record_id", "patient_id", "icd10_code", "description", "type"),
    rows_under(_DIAGNOSES) < MAX_DIAGNOSES,
)


async def add_diagnosis(
    connection: AsyncConnection, viewer: Viewer, new: NewDiagnosis
) -> tuple[Row[Any], Row[Any]]:
    """Returns the diagnosis and the record, whose version the change bumps."""
    require_writer(viewer)
    record = await lock_record(connection, viewer, new.record_id, "input.recordId")
    require_editor(record)
    require_draft(record.status)
    if new.type is DiagnosisType.PRIMARY and await _primary_count(connection, record) > 0:
        raise BadUserInput("input.type: the record already has a PRIMARY diagnosis")
    diagnosis = (
        await connection.execute(
            _INSERT_DIAGNOSIS,
            {
                "id": uuid.uuid4(),
                "tenant_id": record.tenant_id,
                "record_id": record.id,
                "patient_id": record.patient_id,
                "icd10_code": new.icd10_code,
                "description": new.description,
                "type": new.type,
            },
        )
    ).one_or_none()
    if diagnosis is None:
        raise BadUserInput(f"input.recordId: a record holds at most {MAX_DIAGNOSES} diagnoses")
    return diagnosis, await _bump(connection, record.id)


@cache
def _diagnosis_record_statement(role: Role | None) -> Select[*tuple[Any, ...]]:
    return select(Diagnosis.record_id).where(
        readable_diagnoses_for(role), Diagnosis.id == bindparam("diagnosis_id")
    )


_DELETE_DIAGNOSIS = delete(_DIAGNOSES).where(
    _DIAGNOSES.c.id == bindparam("diagnosis_id"), _DIAGNOSES.c.record_id == bindparam("record_id")
)


async def remove_diagnosis(
    connection: AsyncConnection, viewer: Viewer, diagnosis_id: uuid.UUID
) -> Row[Any]:
    require_writer(viewer)
    record_id = await connection.scalar(
        _diagnosis_record_statement(effective_role(viewer)),
        {**viewer_parameters(viewer), "diagnosis_id": diagnosis_id},
    )
    if record_id is None:
        raise NotFound("id: diagnosis not found")
    record = await lock_record(connection, viewer, record_id, "id")
    require_editor(record)
    require_draft(record.status)
    removed = await connection.execute(
        _DELETE_DIAGNOSIS, {"diagnosis_id": diagnosis_id, "record_id": record.id}
    )
    if removed.rowcount == 0:
        # Removed by a concurrent request between the lookup and the lock.
        raise NotFound("id: diagnosis not found")
    return await _bump(connection, record.id)


async def change_status(
    connection: AsyncConnection, viewer: Viewer, change: StatusChange
) -> Row[Any]:
    require_writer(viewer)
    record = await lock_record(connection, viewer, change.record_id, "input.id")
    check_permission(change.status, role=effective_role(viewer), may_edit=bool(record.may_edit))
    check_version(record, change.expected_version, "record")
    check_transition(record.status, change.status)
    if change.status is RecordStatus.FINALIZED:
        check_finalizable(await _primary_count(connection, record))
    updated = await _bump(
        connection,
        record.id,
        finalizing=change.status is RecordStatus.FINALIZED,
        status=change.status,
    )
    await append_status_event(
        connection,
        tenant_id=record.tenant_id,
        record_id=record.id,
        patient_id=record.patient_id,
        previous=record.status,
        status=change.status,
        changed_by=viewer.subject,
        reason=change.reason,
    )
    return updated


_PRIMARY_COUNT = select(func.count()).where(
    _DIAGNOSES.c.tenant_id == bindparam("tenant_id"),
    _DIAGNOSES.c.record_id == bindparam("record_id"),
    _DIAGNOSES.c.type == DiagnosisType.PRIMARY,
)


async def _primary_count(connection: AsyncConnection, record: Row[Any]) -> int:
    count = await connection.scalar(
        _PRIMARY_COUNT, {"tenant_id": record.tenant_id, "record_id": record.id}
    )
    return int(count or 0)
