"""GraphQL enums: the domain enums of ``models.enums``, registered under their contract names."""

from __future__ import annotations

import strawberry

from models.enums import (
    AccessAction,
    AttachmentStatus,
    AuditOutcome,
    Confidentiality,
    DiagnosisType,
    RecordStatus,
    RecordType,
    Role,
    Sex,
)

for _enum in (AccessAction, AttachmentStatus, AuditOutcome, DiagnosisType, RecordType, Role, Sex):
    strawberry.enum(_enum)
strawberry.enum(
    Confidentiality,
    description=(
        "HL7 v3 confidentiality of a record. RESTRICTED records (e.g. substance-use treatment,\n"
        "psychotherapy, HIV status) are readable only by their author, the patient's primary\n"
        "provider, the patient (once FINALIZED) and holders of an active break-glass grant for\n"
        "the patient; to everyone else they do not exist."
    ),
)
strawberry.enum(
    RecordStatus,
    description=(
        "DRAFT -> FINALIZED -> AMENDED (-> AMENDED ...); any -> ENTERED_IN_ERROR.\n"
        "Only DRAFT records can be edited in place."
    ),
)

__all__ = [
    "AccessAction",
    "AttachmentStatus",
    "AuditOutcome",
    "Confidentiality",
    "DiagnosisType",
    "RecordStatus",
    "RecordType",
    "Role",
    "Sex",
]
