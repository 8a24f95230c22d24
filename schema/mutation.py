"""The Mutation root."""

from __future__ import annotations

import strawberry

from resolvers import mutations
from schema.payloads import (
    AttachmentPayload,
    AttachmentUploadPayload,
    BreakGlassPayload,
    DiagnosisPayload,
    PatientPayload,
    ProviderPayload,
    RecordPayload,
)


@strawberry.type
class Mutation:
    create_provider: ProviderPayload = strawberry.mutation(resolver=mutations.create_provider)
    create_patient: PatientPayload = strawberry.mutation(resolver=mutations.create_patient)
    update_patient: PatientPayload = strawberry.mutation(resolver=mutations.update_patient)
    create_record: RecordPayload = strawberry.mutation(resolver=mutations.create_record)
    update_record: RecordPayload = strawberry.mutation(resolver=mutations.update_record)
    add_diagnosis: DiagnosisPayload = strawberry.mutation(resolver=mutations.add_diagnosis)
    remove_diagnosis: RecordPayload = strawberry.mutation(resolver=mutations.remove_diagnosis)
    change_record_status: RecordPayload = strawberry.mutation(
        resolver=mutations.change_record_status
    )
    request_attachment_upload: AttachmentUploadPayload = strawberry.mutation(
        resolver=mutations.request_attachment_upload
    )
    confirm_attachment_upload: AttachmentPayload = strawberry.mutation(
        resolver=mutations.confirm_attachment_upload
    )
    delete_attachment: AttachmentPayload = strawberry.mutation(resolver=mutations.delete_attachment)
    break_glass: BreakGlassPayload = strawberry.mutation(
        resolver=mutations.break_glass_access,
        description="Providers and admins: emergency access to one patient's records",
    )
    revoke_break_glass: BreakGlassPayload = strawberry.mutation(
        resolver=mutations.revoke_break_glass,
        description="Admins, or the grant's holder: ends a grant before it expires",
    )
