"""Mutation resolvers: validate the input, run the command in an audited transaction, answer.

Input is validated before any row is touched; a command that refuses raises, its transaction
rolls back, and the audit extension records the refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.scalars import JSON

from app.data.audit_writer import append
from app.data.commands import attachments as attachment_commands
from app.data.commands import break_glass as break_glass_commands
from app.data.commands import patients as patient_commands
from app.data.commands import providers as provider_commands
from app.data.commands import records as record_commands
from app.domain import attachment_rules, break_glass, validation
from app.domain.errors import BadUserInput
from app.domain.opaque_ids import NodeType
from app.domain.record_workflow import require_reason
from models.enums import AccessAction, AuditOutcome
from resolvers.context import Info
from schema import types
from schema.inputs import (
    AddDiagnosisInput,
    BreakGlassInput,
    ChangeRecordStatusInput,
    CreatePatientInput,
    CreateProviderInput,
    CreateRecordInput,
    LabResultInput,
    PrescriptionInput,
    RequestAttachmentUploadInput,
    UpdatePatientInput,
    UpdateRecordInput,
    VitalSignsInput,
)
from schema.payloads import (
    AttachmentPayload,
    AttachmentUploadPayload,
    BreakGlassPayload,
    DiagnosisPayload,
    PatientPayload,
    PresignedUpload,
    ProviderPayload,
    RecordPayload,
)

if TYPE_CHECKING:
    import uuid

    from sqlalchemy import Row
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.data.storage import AttachmentStorage
    from app.domain.viewer import Viewer
    from resolvers.context import RequestContext

UNSET: Any = strawberry.UNSET


def _given(value: object) -> bool:
    return value is not UNSET


@asynccontextmanager
async def _audited(context: RequestContext) -> AsyncIterator[AsyncConnection]:
    """One transaction holding the change and its audit row: both commit, or neither does."""
    await context.release_reads()
    async with context.sessionmaker() as session, session.begin():
        # The commands' statements are Core ones: on the session's connection they skip the ORM
        # Session's bookkeeping, which was a fifth of a write's CPU in the workers.
        connection = await session.connection()
        yield connection
        await append(connection, context.audit.event(AuditOutcome.OK))
    context.audit.appended()


# --- input conversion --------------------------------------------------------------------------


def _name(value: str, field: str) -> str:
    return validation.text(value, field, max_length=validation.NAME_MAX)


def _id(context: RequestContext, value: str, node_type: NodeType, field: str) -> uuid.UUID:
    return context.ids.decode_typed_id(value, node_type, field)


def _optional_id(
    context: RequestContext, value: str | None, node_type: NodeType, field: str
) -> uuid.UUID | None:
    if not _given(value) or value is None:
        return None
    return context.ids.decode_typed_id(value, node_type, field)


def _optional(value: str | None, field: str, max_length: int) -> str | None:
    if not _given(value):
        return None
    return validation.optional_text(value, field, max_length=max_length)


def _optional_shape(value: str | None, field: str, check: Callable[[str, str], str]) -> str | None:
    if not _given(value) or value is None or not value.strip():
        return None
    return check(value, field)


def _vital_signs(value: VitalSignsInput, field: str) -> dict[str, Any]:
    given = {
        "systolicBp": value.systolic_bp,
        "diastolicBp": value.diastolic_bp,
        "heartRate": value.heart_rate,
        "respiratoryRate": value.respiratory_rate,
        "temperatureC": value.temperature_c,
        "oxygenSaturation": value.oxygen_saturation,
        "weightKg": value.weight_kg,
        "heightCm": value.height_cm,
    }
    return validation.vital_signs({k: v for k, v in given.items() if _given(v)}, field)


def _items(items: list[Any], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Input objects as the camelCase dicts the validators (and the JSONB columns) use."""
    return [
        {camel: getattr(item, attr) for attr, camel in names.items() if _given(getattr(item, attr))}
        for item in items
    ]


_PRESCRIPTION_FIELDS = {
    "medication": "medication",
    "dosage": "dosage",
    "frequency": "frequency",
    "duration_days": "durationDays",
    "notes": "notes",
}
_LAB_RESULT_FIELDS = {
    "test": "test",
    "value": "value",
    "unit": "unit",
    "reference_range": "referenceRange",
    "abnormal": "abnormal",
}


def _prescriptions(items: list[PrescriptionInput] | None) -> list[dict[str, Any]]:
    if not items:
        return []
    return validation.prescriptions(_items(items, _PRESCRIPTION_FIELDS), "input.prescriptions")


def _lab_results(items: list[LabResultInput] | None) -> list[dict[str, Any]]:
    if not items:
        return []
    return validation.lab_results(_items(items, _LAB_RESULT_FIELDS), "input.labResults")


def _patient_details(input: CreatePatientInput | UpdatePatientInput) -> dict[str, Any]:
    """The optional patient columns the input gives (``None`` or blank clears one), validated."""
    checks = (
        ("email", "input.email", validation.email),
        ("phone", "input.phone", validation.phone),
        ("preferred_language", "input.preferredLanguage", validation.language_tag),
    )
    return {
        column: _optional_shape(getattr(input, column), field, check)
        for column, field, check in checks
        if _given(getattr(input, column))
    }


def _record_content(
    input: CreateRecordInput | UpdateRecordInput, visit_date: datetime | None
) -> dict[str, Any]:
    """The record columns the input gives (``None`` clears one), validated."""
    values: dict[str, Any] = {}
    if _given(input.chief_complaint):
        values["chief_complaint"] = validation.optional_text(
            input.chief_complaint, "input.chiefComplaint", max_length=validation.CHIEF_COMPLAINT_MAX
        )
    if _given(input.notes):
        values["notes"] = validation.optional_text(
            input.notes, "input.notes", max_length=validation.NOTES_MAX, multiline=True
        )
    if _given(input.staff_note):
        values["staff_note"] = validation.optional_text(
            input.staff_note, "input.staffNote", max_length=validation.NOTES_MAX, multiline=True
        )
    if _given(input.confidentiality):
        if input.confidentiality is None:
            raise BadUserInput("input.confidentiality: cannot be null")
        values["confidentiality"] = input.confidentiality
    if _given(input.vital_signs):
        values["vital_signs"] = (
            None
            if input.vital_signs is None
            else _vital_signs(input.vital_signs, "input.vitalSigns") or None
        )
    if _given(input.prescriptions):
        values["prescriptions"] = _prescriptions(input.prescriptions)
    if _given(input.lab_results):
        values["lab_results"] = _lab_results(input.lab_results)
    if _given(input.follow_up_date):
        follow_up = input.follow_up_date
        if follow_up is not None and visit_date is not None:
            follow_up = validation.follow_up_date(
                follow_up, "input.followUpDate", visit_date=visit_date.date()
            )
        values["follow_up_date"] = follow_up
    return values


# --- mutations ---------------------------------------------------------------------------------


async def create_provider(info: Info, input: CreateProviderInput) -> ProviderPayload:
    context = info.context
    viewer = context.reader()
    new = provider_commands.NewProvider(
        npi=validation.npi(input.npi, "input.npi"),
        given_name=validation.text(
            input.given_name, "input.givenName", max_length=validation.NAME_MAX
        ),
        family_name=validation.text(
            input.family_name, "input.familyName", max_length=validation.NAME_MAX
        ),
        specialty=_optional(input.specialty, "input.specialty", validation.SPECIALTY_MAX),
        email=_optional_shape(input.email, "input.email", validation.email),
        cognito_sub=_optional_shape(input.cognito_sub, "input.cognitoSub", validation.cognito_sub),
    )
    async with _audited(context) as session:
        row = await provider_commands.create_provider(session, viewer, new)
        provider = context.loaders.made(types.Provider, row)
    return ProviderPayload(provider=provider)


async def create_patient(info: Info, input: CreatePatientInput) -> PatientPayload:
    context = info.context
    viewer = context.reader()
    provider_id = (
        _id(context, input.primary_provider_id, NodeType.PROVIDER, "input.primaryProviderId")
        if _given(input.primary_provider_id) and input.primary_provider_id is not None
        else None
    )
    new = patient_commands.NewPatient(
        mrn=validation.mrn(input.mrn, "input.mrn"),
        given_name=validation.text(
            input.given_name, "input.givenName", max_length=validation.NAME_MAX
        ),
        family_name=validation.text(
            input.family_name, "input.familyName", max_length=validation.NAME_MAX
        ),
        date_of_birth=validation.date_of_birth(
            input.date_of_birth, "input.dateOfBirth", today=datetime.now(UTC).date()
        ),
        sex=input.sex,
        details=_patient_details(input),
        primary_provider_id=provider_id,
        cognito_sub=_optional_shape(input.cognito_sub, "input.cognitoSub", validation.cognito_sub),
    )
    async with _audited(context) as session:
        row = await patient_commands.create_patient(session, viewer, new)
        patient = context.loaders.made(types.Patient, row)
    return PatientPayload(patient=patient)


async def update_patient(info: Info, input: UpdatePatientInput) -> PatientPayload:
    context = info.context
    viewer = context.reader()
    values: dict[str, Any] = {}
    for attr, field in (("given_name", "input.givenName"), ("family_name", "input.familyName")):
        value = getattr(input, attr)
        if _given(value):
            if value is None:
                raise BadUserInput(f"{field}: cannot be null")
            values[attr] = _name(value, field)
    values.update(_patient_details(input))
    if _given(input.primary_provider_id):
        values["primary_provider_id"] = _optional_id(
            context, input.primary_provider_id, NodeType.PROVIDER, "input.primaryProviderId"
        )
    changes = patient_commands.PatientChanges(
        patient_id=_id(context, input.id, NodeType.PATIENT, "input.id"),
        expected_version=input.expected_version,
        values=values,
    )
    async with _audited(context) as session:
        row = await patient_commands.update_patient(session, viewer, changes)
        patient = context.loaders.made(types.Patient, row)
    return PatientPayload(patient=patient)


async def create_record(info: Info, input: CreateRecordInput) -> RecordPayload:
    context = info.context
    viewer = context.reader()
    visit_date = validation.visit_date(input.visit_date, "input.visitDate", now=datetime.now(UTC))
    # The follow-up is a calendar date in the clinic's zone: compare it with the visit's local date.
    content = _record_content(input, input.visit_date)
    provider_id = _optional_id(context, input.provider_id, NodeType.PROVIDER, "input.providerId")
    new = record_commands.NewRecord(
        patient_id=_id(context, input.patient_id, NodeType.PATIENT, "input.patientId"),
        provider_id=provider_id,
        record_type=input.record_type,
        visit_date=visit_date,
        content=content,
    )
    async with _audited(context) as session:
        row = await record_commands.create_record(session, viewer, new)
        record = context.loaders.made(types.MedicalRecord, row)
    return RecordPayload(record=record)


async def update_record(info: Info, input: UpdateRecordInput) -> RecordPayload:
    context = info.context
    viewer = context.reader()
    changes = record_commands.RecordChanges(
        record_id=_id(context, input.id, NodeType.MEDICAL_RECORD, "input.id"),
        expected_version=input.expected_version,
        # The follow-up date is checked against the stored visit date by the command.
        values=_record_content(input, None),
    )
    async with _audited(context) as session:
        row = await record_commands.update_record(session, viewer, changes)
        record = context.loaders.made(types.MedicalRecord, row)
    return RecordPayload(record=record)


async def add_diagnosis(info: Info, input: AddDiagnosisInput) -> DiagnosisPayload:
    context = info.context
    viewer = context.reader()
    new = record_commands.NewDiagnosis(
        record_id=_id(context, input.record_id, NodeType.MEDICAL_RECORD, "input.recordId"),
        icd10_code=validation.icd10(input.icd10_code, "input.icd10Code"),
        description=validation.text(
            input.description, "input.description", max_length=validation.DIAGNOSIS_DESCRIPTION_MAX
        ),
        type=input.type,
    )
    async with _audited(context) as session:
        diagnosis_row, _ = await record_commands.add_diagnosis(session, viewer, new)
        diagnosis = context.loaders.made(types.Diagnosis, diagnosis_row)
    return DiagnosisPayload(diagnosis=diagnosis)


async def remove_diagnosis(info: Info, id: strawberry.ID) -> RecordPayload:
    context = info.context
    viewer = context.reader()
    diagnosis_id = _id(context, id, NodeType.DIAGNOSIS, "id")
    async with _audited(context) as session:
        row = await record_commands.remove_diagnosis(session, viewer, diagnosis_id)
        record = context.loaders.made(types.MedicalRecord, row)
    return RecordPayload(record=record)


async def change_record_status(info: Info, input: ChangeRecordStatusInput) -> RecordPayload:
    context = info.context
    viewer = context.reader()
    reason = validation.reason(
        input.reason if _given(input.reason) else None,
        "input.reason",
        required=False,
    )
    require_reason(input.status, reason)
    change = record_commands.StatusChange(
        record_id=_id(context, input.id, NodeType.MEDICAL_RECORD, "input.id"),
        status=input.status,
        expected_version=input.expected_version,
        reason=reason,
    )
    async with _audited(context) as session:
        row = await record_commands.change_status(session, viewer, change)
        record = context.loaders.made(types.MedicalRecord, row)
    return RecordPayload(record=record)


async def request_attachment_upload(
    info: Info, input: RequestAttachmentUploadInput
) -> AttachmentUploadPayload:
    context = info.context
    viewer = context.reader()
    settings = context.settings
    new = attachment_commands.NewAttachment(
        record_id=_id(context, input.record_id, NodeType.MEDICAL_RECORD, "input.recordId"),
        file_name=attachment_rules.file_name(input.file_name, "input.fileName"),
        content_type=attachment_rules.content_type(
            input.content_type, "input.contentType", allowed=settings.attachment_content_types
        ),
        size_bytes=attachment_rules.size_bytes(
            input.size_bytes, "input.sizeBytes", maximum=settings.attachment_max_bytes
        ),
        checksum_sha256=attachment_rules.sha256_hex(input.checksum_sha256, "input.checksumSha256"),
    )
    async with _audited(context) as session:
        row, upload = await attachment_commands.request_upload(
            session, viewer, context.storage, new
        )
        attachment = context.loaders.made(types.Attachment, row)
        context.audit.touch_file(row.id, row.record_id, row.patient_id)
    return AttachmentUploadPayload(
        attachment=attachment,
        upload=PresignedUpload(
            url=upload.url,
            method="POST",
            fields=JSON(upload.fields),
            headers=None,
            expires_at=upload.expires_at,
        ),
    )


async def confirm_attachment_upload(info: Info, id: strawberry.ID) -> AttachmentPayload:
    return await _attachment_changed(info, id, attachment_commands.confirm_upload)


async def delete_attachment(info: Info, id: strawberry.ID) -> AttachmentPayload:
    return await _attachment_changed(info, id, attachment_commands.delete_attachment)


async def _attachment_changed(
    info: Info,
    id: strawberry.ID,
    change: Callable[[AsyncConnection, Viewer, AttachmentStorage, uuid.UUID], Awaitable[Row[Any]]],
) -> AttachmentPayload:
    """One audited attachment change, by id; its row becomes the payload."""
    context = info.context
    viewer = context.reader()
    attachment_id = _id(context, id, NodeType.ATTACHMENT, "id")
    async with _audited(context) as session:
        row = await change(session, viewer, context.storage, attachment_id)
        attachment = context.loaders.made(types.Attachment, row)
        context.audit.touch_file(row.id, row.record_id, row.patient_id)
    return AttachmentPayload(attachment=attachment)


async def break_glass_access(info: Info, input: BreakGlassInput) -> BreakGlassPayload:
    context = info.context
    viewer = context.reader()
    new = break_glass_commands.NewGrant(
        patient_id=_id(context, input.patient_id, NodeType.PATIENT, "input.patientId"),
        reason=break_glass.reason(input.reason, "input.reason"),
        minutes=break_glass.duration_minutes(
            input.duration_minutes if _given(input.duration_minutes) else None,
            "input.durationMinutes",
        ),
    )
    context.audit.action = AccessAction.BREAK_GLASS
    async with _audited(context) as session:
        row = await break_glass_commands.make_grant(session, viewer, new)
        grant = context.loaders.made(types.BreakGlassGrant, row)
    return BreakGlassPayload(grant=grant)


async def revoke_break_glass(info: Info, id: strawberry.ID) -> BreakGlassPayload:
    context = info.context
    viewer = context.reader()
    grant_id = _id(context, id, NodeType.BREAK_GLASS_GRANT, "id")
    async with _audited(context) as session:
        row = await break_glass_commands.revoke_grant(session, viewer, grant_id)
        grant = context.loaders.made(types.BreakGlassGrant, row)
    return BreakGlassPayload(grant=grant)
