"""Mutation payloads."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.scalars import JSON

from schema.types import (
    Attachment,
    BreakGlassGrant,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
)


@strawberry.type
class ProviderPayload:
    provider: Provider


@strawberry.type
class PatientPayload:
    patient: Patient


@strawberry.type
class RecordPayload:
    record: MedicalRecord


@strawberry.type
class DiagnosisPayload:
    diagnosis: Diagnosis


@strawberry.type(
    description=(
        "How to send the file: POST a multipart form with fields (then the file), or PUT the "
        "bytes with headers."
    )
)
class PresignedUpload:
    url: str
    method: str
    fields: JSON | None
    headers: JSON | None
    expires_at: dt.datetime


@strawberry.type
class AttachmentPayload:
    attachment: Attachment


@strawberry.type
class AttachmentUploadPayload:
    attachment: Attachment
    upload: PresignedUpload


@strawberry.type
class BreakGlassPayload:
    grant: BreakGlassGrant
