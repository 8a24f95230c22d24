"""The tables. Declarations only: queries live in ``resolvers/`` and ``app/`` repositories.

Foreign keys between tenant-scoped tables include ``tenant_id``, so the database itself refuses a
row that points into another tenant.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKeyConstraint,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TenantScoped, Timestamps, UUIDKey, Versioned
from models.enums import (
    AccessAction,
    AttachmentStatus,
    AuditOutcome,
    Confidentiality,
    DiagnosisType,
    RecordStatus,
    RecordType,
    Sex,
)

TENANT_ID = String(64)
# Rows under a record name the record's patient as well, so every row of patient data says whose it
# is (the audit trail reads it there); this key keeps it the record's patient.
_OF_RECORD = (
    ["tenant_id", "record_id", "patient_id"],
    ["medical_records.tenant_id", "medical_records.id", "medical_records.patient_id"],
)


def _pg_enum(enum_cls: type[Any], name: str) -> Enum:
    return Enum(enum_cls, name=name, values_callable=lambda e: [m.value for m in e])


SEX = _pg_enum(Sex, "sex")
RECORD_TYPE = _pg_enum(RecordType, "record_type")
RECORD_STATUS = _pg_enum(RecordStatus, "record_status")
CONFIDENTIALITY = _pg_enum(Confidentiality, "confidentiality")
DIAGNOSIS_TYPE = _pg_enum(DiagnosisType, "diagnosis_type")
ATTACHMENT_STATUS = _pg_enum(AttachmentStatus, "attachment_status")
AUDIT_OUTCOME = _pg_enum(AuditOutcome, "audit_outcome")
ACCESS_ACTION = _pg_enum(AccessAction, "access_action")


class Provider(UUIDKey, TenantScoped, Timestamps, Versioned, Base):
    __tablename__ = "providers"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, nullable=False)
    npi: Mapped[str] = mapped_column(String(10), nullable=False)
    given_name: Mapped[str] = mapped_column(String(100), nullable=False)
    family_name: Mapped[str] = mapped_column(String(100), nullable=False)
    specialty: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(nullable=False, server_default=text("true"))
    cognito_sub: Mapped[str | None] = mapped_column(String(128))

    patients: Mapped[list[Patient]] = relationship(back_populates="primary_provider", lazy="raise")

    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "npi"),
        # Keyset order of Query.providers.
        Index("ix_providers_tenant_name", "tenant_id", "family_name", "given_name", "id"),
        # Signing in: a token's `sub` finds its provider row (and so its tenant). A subject is
        # linked once in the installation: see SubjectLink.
        Index("ix_providers_cognito_sub", "cognito_sub"),
    )


class Patient(UUIDKey, TenantScoped, Timestamps, Versioned, Base):
    __tablename__ = "patients"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, nullable=False)
    mrn: Mapped[str] = mapped_column(String(64), nullable=False)
    given_name: Mapped[str] = mapped_column(String(100), nullable=False)
    family_name: Mapped[str] = mapped_column(String(100), nullable=False)
    date_of_birth: Mapped[date] = mapped_column(Date, nullable=False)
    sex: Mapped[Sex] = mapped_column(SEX, nullable=False)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    preferred_language: Mapped[str | None] = mapped_column(String(35))
    primary_provider_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    cognito_sub: Mapped[str | None] = mapped_column(String(128))

    primary_provider: Mapped[Provider | None] = relationship(
        back_populates="patients", lazy="raise"
    )
    records: Mapped[list[MedicalRecord]] = relationship(back_populates="patient", lazy="raise")

    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "mrn"),
        ForeignKeyConstraint(
            ["tenant_id", "primary_provider_id"], ["providers.tenant_id", "providers.id"]
        ),
        # Keyset order of Query.patients ("most recently created first").
        Index("ix_patients_tenant_created", "tenant_id", text("created_at DESC"), text("id DESC")),
        # Provider.patients and PatientFilter.primaryProviderId.
        Index(
            "ix_patients_tenant_provider_created",
            "tenant_id",
            "primary_provider_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index("ix_patients_cognito_sub", "cognito_sub"),
    )


class SubjectLink(Base):
    """The Cognito subjects linked to a provider or patient row, one row each.

    Triggers on ``providers`` and ``patients`` (in the migration) keep it equal to their
    ``cognito_sub`` values, so its key refuses a subject linked twice, across both tables and
    all tenants, whoever writes the row.
    """

    __tablename__ = "subject_links"

    subject: Mapped[str] = mapped_column(String(128), primary_key=True)


# PatientFilter.search: `lower(column) LIKE 'prefix%'` is served by text_pattern_ops indexes.
for _column in ("given_name", "family_name", "mrn"):
    Index(
        f"ix_patients_tenant_{_column}_prefix",
        Patient.tenant_id,
        func.lower(Patient.__table__.c[_column]).label(f"lower_{_column}"),
        postgresql_ops={f"lower_{_column}": "text_pattern_ops"},
    )


class MedicalRecord(UUIDKey, TenantScoped, Timestamps, Versioned, Base):
    __tablename__ = "medical_records"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, nullable=False)
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    provider_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    record_type: Mapped[RecordType] = mapped_column(RECORD_TYPE, nullable=False)
    visit_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    chief_complaint: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str | None] = mapped_column(Text)
    staff_note: Mapped[str | None] = mapped_column(Text)
    vital_signs: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    prescriptions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    lab_results: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    status: Mapped[RecordStatus] = mapped_column(
        RECORD_STATUS, nullable=False, server_default=RecordStatus.DRAFT.value
    )
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    follow_up_date: Mapped[date | None] = mapped_column(Date)
    confidentiality: Mapped[Confidentiality] = mapped_column(
        CONFIDENTIALITY, nullable=False, server_default=Confidentiality.NORMAL.value
    )

    patient: Mapped[Patient] = relationship(back_populates="records", lazy="raise")
    # tenant_id is shared by both composite foreign keys; the patient relationship owns it.
    provider: Mapped[Provider] = relationship(lazy="raise", overlaps="patient,records")

    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        # The target of the rows under a record, which name its patient too (_OF_RECORD).
        UniqueConstraint("tenant_id", "id", "patient_id"),
        ForeignKeyConstraint(["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"]),
        ForeignKeyConstraint(["tenant_id", "provider_id"], ["providers.tenant_id", "providers.id"]),
        # Keyset order of Query.records ("most recent visitDate first") and its filters.
        Index(
            "ix_medical_records_tenant_visit", "tenant_id", text("visit_date DESC"), text("id DESC")
        ),
        Index(
            "ix_medical_records_tenant_status_visit",
            "tenant_id",
            "status",
            text("visit_date DESC"),
            text("id DESC"),
        ),
        Index(
            "ix_medical_records_tenant_type_visit",
            "tenant_id",
            "record_type",
            text("visit_date DESC"),
            text("id DESC"),
        ),
        # Patient.records and Provider.records loaders (first-N per parent).
        Index(
            "ix_medical_records_tenant_patient_visit",
            "tenant_id",
            "patient_id",
            text("visit_date DESC"),
            text("id DESC"),
        ),
        Index(
            "ix_medical_records_tenant_provider_visit",
            "tenant_id",
            "provider_id",
            text("visit_date DESC"),
            text("id DESC"),
        ),
    )


class Diagnosis(UUIDKey, TenantScoped, Base):
    __tablename__ = "diagnoses"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, nullable=False)
    record_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    icd10_code: Mapped[str] = mapped_column(String(8), nullable=False)
    description: Mapped[str] = mapped_column(String(500), nullable=False)
    type: Mapped[DiagnosisType] = mapped_column(DIAGNOSIS_TYPE, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        ForeignKeyConstraint(*_OF_RECORD, ondelete="CASCADE"),
        # MedicalRecord.diagnoses loader.
        Index("ix_diagnoses_tenant_record", "tenant_id", "record_id", "created_at", "id"),
    )


class Attachment(UUIDKey, TenantScoped, Timestamps, Versioned, Base):
    __tablename__ = "attachments"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, nullable=False)
    record_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(127), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    checksum_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[AttachmentStatus] = mapped_column(
        ATTACHMENT_STATUS, nullable=False, server_default=AttachmentStatus.PENDING_UPLOAD.value
    )
    storage_key: Mapped[str] = mapped_column(String(1024), nullable=False)
    uploaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        ForeignKeyConstraint(*_OF_RECORD),
        UniqueConstraint("storage_key"),
        # MedicalRecord.attachments loader.
        Index("ix_attachments_tenant_record", "tenant_id", "record_id", "created_at", "id"),
    )


class RecordStatusEvent(TenantScoped, Base):
    """One row per status change; ``sequence`` orders the event stream subscribers resume from."""

    __tablename__ = "record_status_events"

    sequence: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID, nullable=False)
    record_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    previous_status: Mapped[RecordStatus | None] = mapped_column(RECORD_STATUS)
    status: Mapped[RecordStatus] = mapped_column(RECORD_STATUS, nullable=False)
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    changed_by: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(1000))

    __table_args__ = (
        ForeignKeyConstraint(*_OF_RECORD),
        # MedicalRecord.statusHistory loader.
        Index("ix_record_status_events_tenant_record", "tenant_id", "record_id", "sequence"),
        # Subscription replay: the tenant's stream after a position.
        Index("ix_record_status_events_tenant_sequence", "tenant_id", "sequence"),
    )


class BreakGlassGrant(UUIDKey, TenantScoped, Base):
    """Emergency read access of one caller (by token subject) to one patient, for a limited time.

    Only revocation changes a grant; ``sequence`` orders the tenant's grants for subscribers.
    """

    __tablename__ = "break_glass_grants"

    sequence: Mapped[int] = mapped_column(BigInteger, Identity(always=True), nullable=False)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID, nullable=False)
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    subject: Mapped[str] = mapped_column(String(128), nullable=False)
    # The holder's provider row; null when an admin holds the grant.
    provider_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    reason: Mapped[str] = mapped_column(String(1000), nullable=False)
    granted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("sequence"),
        ForeignKeyConstraint(["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"]),
        ForeignKeyConstraint(["tenant_id", "provider_id"], ["providers.tenant_id", "providers.id"]),
        CheckConstraint("expires_at > granted_at", name="expires_after_granted"),
        CheckConstraint(
            "(revoked_at IS NULL) = (revoked_by IS NULL) AND "
            "(revoked_at IS NULL OR revoked_at >= granted_at)",
            name="revoked_with_revoker",
        ),
        # The read predicate (app/domain/access.py): the caller's grants for a record's patient.
        Index("ix_break_glass_grants_tenant_subject_patient", "tenant_id", "subject", "patient_id"),
        # Query.breakGlassGrants ("newest first"), and by patient.
        Index(
            "ix_break_glass_grants_tenant_granted",
            "tenant_id",
            text("granted_at DESC"),
            text("id DESC"),
        ),
        Index(
            "ix_break_glass_grants_tenant_patient_granted",
            "tenant_id",
            "patient_id",
            text("granted_at DESC"),
            text("id DESC"),
        ),
        # breakGlassActivated: the tenant's grants after a position.
        Index("ix_break_glass_grants_tenant_sequence", "tenant_id", "sequence"),
    )


class AuditEvent(Base):
    """Append-only: triggers in the migrations reject UPDATE, DELETE and TRUNCATE on the table and
    on each of its partitions, one per month of ``occurred_at`` (app/data/audit_partitions.py)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    # In the primary key because a partitioned table's unique keys must hold its partition key.
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    # Null when the caller's token named no tenant (a denied request is audited all the same).
    tenant_id: Mapped[str | None] = mapped_column(TENANT_ID)
    subject: Mapped[str | None] = mapped_column(String(128))
    roles: Mapped[list[str]] = mapped_column(
        ARRAY(String(16)), nullable=False, server_default=text("'{}'")
    )
    operation_name: Mapped[str | None] = mapped_column(String(200))
    operation_type: Mapped[str] = mapped_column(String(16), nullable=False)
    query_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    patient_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), nullable=False, server_default=text("'{}'")
    )
    record_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), nullable=False, server_default=text("'{}'")
    )
    # Attachments whose download URL the operation issued, or which it changed.
    attachment_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), nullable=False, server_default=text("'{}'")
    )
    outcome: Mapped[AuditOutcome] = mapped_column(AUDIT_OUTCOME, nullable=False)
    # What the operation did to the patients it names (their access log).
    action: Mapped[AccessAction] = mapped_column(ACCESS_ACTION, nullable=False)
    # The break-glass grant the operation read under: found by the insert itself
    # (app/data/audit_writer.py). No foreign key: the audit trail outlives what it names.
    break_glass_grant_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    client_address: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        # Query.auditEvents keyset order.
        Index(
            "ix_audit_events_tenant_occurred",
            "tenant_id",
            text("occurred_at DESC"),
            text("id DESC"),
        ),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )


class AuditEventPatient(Base):
    """One row per patient an audit row names, written by a trigger on ``audit_events`` (in its
    migration) with every audit row inserted through it: a patient's audit rows, newest first,
    are a range of this key. Append-only and partitioned like ``audit_events``.

    It also carries the audit row's columns the patient's access log shows, copied by the same
    trigger, so a page of the log reads one index range of this table and nothing else."""

    __tablename__ = "audit_event_patients"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    # No foreign key: the trigger makes the row from the audit row itself, and checking it would
    # cost every audit write a lookup.
    audit_event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    action: Mapped[AccessAction] = mapped_column(ACCESS_ACTION, nullable=False)
    subject: Mapped[str | None] = mapped_column(String(128))
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(16)), nullable=False)
    # Of the records the audit row names, this patient's own (the trigger keeps no others).
    record_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), nullable=False)
    break_glass_grant_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    __table_args__ = ({"postgresql_partition_by": "RANGE (occurred_at)"},)


class PersistedDocument(Base):
    """GraphQL documents registered for the allow-list mode, by the SHA-256 of their text."""

    __tablename__ = "persisted_documents"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
