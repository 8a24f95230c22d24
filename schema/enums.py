"""GraphQL enums: the domain enums of ``models.enums``, exposed under their contract names."""

from __future__ import annotations

import strawberry

from models import enums

Role = strawberry.enum(enums.Role)
Sex = strawberry.enum(enums.Sex)
RecordType = strawberry.enum(enums.RecordType)
RecordStatus = strawberry.enum(
    enums.RecordStatus,
    description=(
        "DRAFT -> FINALIZED -> AMENDED (-> AMENDED ...); any -> ENTERED_IN_ERROR.\n"
        "Only DRAFT records can be edited in place."
    ),
)
DiagnosisType = strawberry.enum(enums.DiagnosisType)
AttachmentStatus = strawberry.enum(enums.AttachmentStatus)
