"""SQLAlchemy declarative models: table declarations only."""

from models.base import Base, table_of
from models.tables import (
    Attachment,
    AuditEvent,
    AuditEventPatient,
    BreakGlassGrant,
    Diagnosis,
    MedicalRecord,
    Patient,
    PersistedDocument,
    Provider,
    RecordStatusEvent,
    SubjectLink,
)

__all__ = [
    "Attachment",
    "AuditEvent",
    "AuditEventPatient",
    "Base",
    "BreakGlassGrant",
    "Diagnosis",
    "MedicalRecord",
    "Patient",
    "PersistedDocument",
    "Provider",
    "RecordStatusEvent",
    "SubjectLink",
    "table_of",
]
