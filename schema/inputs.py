"""Input types of the Query side."""

from __future__ import annotations

import datetime as dt

import strawberry

from schema.enums import Confidentiality, DiagnosisType, RecordStatus, RecordType, Sex


@strawberry.input
class PatientFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive prefix of given name, family name or MRN"
    )
    primary_provider_id: strawberry.ID | None = None


@strawberry.input
class RecordFilter:
    status: list[RecordStatus] | None = None
    record_type: list[RecordType] | None = None
    visited_after: dt.datetime | None = strawberry.field(
        default=None, description="Inclusive lower bound of visitDate"
    )
    visited_before: dt.datetime | None = strawberry.field(
        default=None, description="Exclusive upper bound of visitDate"
    )


@strawberry.input
class AuditEventFilter:
    patient_id: strawberry.ID | None = None
    occurred_after: dt.datetime | None = strawberry.field(
        default=None, description="Inclusive lower bound of occurredAt"
    )
    occurred_before: dt.datetime | None = strawberry.field(
        default=None, description="Exclusive upper bound of occurredAt"
    )


@strawberry.input
class BreakGlassGrantFilter:
    patient_id: strawberry.ID | None = None
    active_only: bool | None = None


# --- Mutation inputs. Optional fields default to UNSET, so "not given" and "null" differ. ---


@strawberry.input
class CreateProviderInput:
    npi: str
    given_name: str
    family_name: str
    specialty: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    cognito_sub: str | None = strawberry.field(
        default=strawberry.UNSET, description="Cognito subject to link to this provider"
    )


@strawberry.input
class CreatePatientInput:
    mrn: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    sex: Sex
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    preferred_language: str | None = strawberry.UNSET
    primary_provider_id: strawberry.ID | None = strawberry.UNSET
    cognito_sub: str | None = strawberry.field(
        default=strawberry.UNSET, description="Cognito subject of the patient's own login, if any"
    )


@strawberry.input
class UpdatePatientInput:
    id: strawberry.ID
    expected_version: int
    given_name: str | None = strawberry.UNSET
    family_name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    preferred_language: str | None = strawberry.UNSET
    primary_provider_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class VitalSignsInput:
    systolic_bp: int | None = strawberry.UNSET
    diastolic_bp: int | None = strawberry.UNSET
    heart_rate: int | None = strawberry.UNSET
    respiratory_rate: int | None = strawberry.UNSET
    temperature_c: float | None = strawberry.UNSET
    oxygen_saturation: int | None = strawberry.UNSET
    weight_kg: float | None = strawberry.UNSET
    height_cm: float | None = strawberry.UNSET


@strawberry.input
class PrescriptionInput:
    medication: str
    dosage: str
    frequency: str
    duration_days: int | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET


@strawberry.input
class LabResultInput:
    test: str
    value: str
    unit: str | None = strawberry.UNSET
    reference_range: str | None = strawberry.UNSET
    abnormal: bool | None = strawberry.UNSET


@strawberry.input
class CreateRecordInput:
    patient_id: strawberry.ID
    provider_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Defaults to the calling provider"
    )
    record_type: RecordType
    visit_date: dt.datetime
    chief_complaint: str | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    staff_note: str | None = strawberry.UNSET
    confidentiality: Confidentiality | None = strawberry.field(
        default=strawberry.UNSET, description="Defaults to NORMAL"
    )
    vital_signs: VitalSignsInput | None = strawberry.UNSET
    prescriptions: list[PrescriptionInput] | None = strawberry.UNSET
    lab_results: list[LabResultInput] | None = strawberry.UNSET
    follow_up_date: dt.date | None = strawberry.UNSET


@strawberry.input
class UpdateRecordInput:
    id: strawberry.ID
    expected_version: int
    chief_complaint: str | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    staff_note: str | None = strawberry.UNSET
    confidentiality: Confidentiality | None = strawberry.field(
        default=strawberry.UNSET, description="Defaults to NORMAL"
    )
    vital_signs: VitalSignsInput | None = strawberry.UNSET
    prescriptions: list[PrescriptionInput] | None = strawberry.UNSET
    lab_results: list[LabResultInput] | None = strawberry.UNSET
    follow_up_date: dt.date | None = strawberry.UNSET


@strawberry.input
class AddDiagnosisInput:
    record_id: strawberry.ID
    icd10_code: str = strawberry.field(name="icd10Code")
    description: str
    type: DiagnosisType


@strawberry.input
class ChangeRecordStatusInput:
    id: strawberry.ID
    status: RecordStatus
    expected_version: int
    reason: str | None = strawberry.field(
        default=strawberry.UNSET, description="Required for AMENDED and ENTERED_IN_ERROR"
    )


@strawberry.input
class RequestAttachmentUploadInput:
    record_id: strawberry.ID
    file_name: str
    content_type: str
    size_bytes: int
    checksum_sha256: str = strawberry.field(
        name="checksumSha256", description="Hex SHA-256 of the file's bytes"
    )


@strawberry.input
class BreakGlassInput:
    patient_id: strawberry.ID
    reason: str = strawberry.field(
        description="Why normal access is not enough; at least 10 characters"
    )
    duration_minutes: int | None = strawberry.field(
        default=strawberry.UNSET, description="1 to 240; defaults to 60"
    )
