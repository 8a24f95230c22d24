"""Domain enumerations shared by the tables, the GraphQL schema and the access rules."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ADMIN = "admin"
    PROVIDER = "provider"
    PATIENT = "patient"


class Sex(enum.StrEnum):
    FEMALE = "FEMALE"
    MALE = "MALE"
    OTHER = "OTHER"
    UNKNOWN = "UNKNOWN"


class RecordType(enum.StrEnum):
    CONSULTATION = "CONSULTATION"
    FOLLOW_UP = "FOLLOW_UP"
    LAB_RESULT = "LAB_RESULT"
    IMAGING = "IMAGING"
    PROCEDURE = "PROCEDURE"
    DISCHARGE_SUMMARY = "DISCHARGE_SUMMARY"


class RecordStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    FINALIZED = "FINALIZED"
    AMENDED = "AMENDED"
    ENTERED_IN_ERROR = "ENTERED_IN_ERROR"


class Confidentiality(enum.StrEnum):
    NORMAL = "NORMAL"
    RESTRICTED = "RESTRICTED"


class DiagnosisType(enum.StrEnum):
    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"


class AttachmentStatus(enum.StrEnum):
    PENDING_UPLOAD = "PENDING_UPLOAD"
    AVAILABLE = "AVAILABLE"
    REJECTED = "REJECTED"
    DELETED = "DELETED"


class AccessAction(enum.StrEnum):
    """What an audited operation did to the patients it names, as their access log shows it."""

    VIEWED = "VIEWED"
    CHANGED = "CHANGED"
    DOWNLOADED_FILE = "DOWNLOADED_FILE"
    BREAK_GLASS = "BREAK_GLASS"


class AuditOutcome(enum.StrEnum):
    OK = "ok"
    DENIED = "denied"
    ERROR = "error"
