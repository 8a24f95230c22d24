"""The Query root."""

from __future__ import annotations

import strawberry

from resolvers import queries
from schema import types
from schema.connections import Connection


@strawberry.type
class Query:
    node: types.Node | None = strawberry.field(resolver=queries.node)
    me: types.Viewer = strawberry.field(resolver=queries.me)
    patient: types.Patient | None = strawberry.field(resolver=queries.patient)
    patients: Connection[types.Patient] = strawberry.field(
        resolver=queries.patient_list, description="Most recently created first"
    )
    provider: types.Provider | None = strawberry.field(resolver=queries.provider)
    providers: Connection[types.Provider] = strawberry.field(
        resolver=queries.provider_list, description="Alphabetical by family name, then given name"
    )
    record: types.MedicalRecord | None = strawberry.field(resolver=queries.record)
    records: Connection[types.MedicalRecord] = strawberry.field(
        resolver=queries.record_list, description="Most recent visitDate first"
    )
    break_glass_grants: Connection[types.BreakGlassGrant] = strawberry.field(
        resolver=queries.break_glass_grant_list,
        description="Admins: every grant of the tenant; providers: their own. Newest first.",
    )
    audit_events: Connection[types.AuditEvent] = strawberry.field(
        resolver=queries.audit_event_list,
        description="The audit trail of the caller's tenant, newest first (admins only)",
    )
