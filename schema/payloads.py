"""Mutation payloads."""

from __future__ import annotations

import strawberry

from schema.types import Diagnosis, MedicalRecord, Patient, Provider


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
