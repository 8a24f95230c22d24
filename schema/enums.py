"""GraphQL enums: the domain enums of ``models.enums``, registered under their contract names."""

from __future__ import annotations

import strawberry

from models.enums import (
    AttachmentStatus,
    AuditOutcome,
    DiagnosisType,
    RecordStatus,
    RecordType,
    Role,
    Sex,
)

for _enum in (AttachmentStatus, AuditOutcome, DiagnosisType, RecordType, Role, Sex):
    strawberry.enum(_enum)
strawberry.enum(
    RecordStatus,
    description=(
        "DRAFT -> FINALIZED -> AMENDED (-> AMENDED ...); any -> ENTERED_IN_ERROR.\n"
        "Only DRAFT records can be edited in place."
    ),
)

__all__ = [
    "AttachmentStatus",
    "AuditOutcome",
    "DiagnosisType",
    "RecordStatus",
    "RecordType",
    "Role",
    "Sex",
]
