"""Root Query resolvers: each checks the caller first; loaders and repositories scope the SQL."""

from __future__ import annotations

from functools import partial

import strawberry

from app.auth.callers import with_links
from app.data.pagination import page_request
from app.data.repositories import audit_events, break_glass_grants, patients, providers, records
from app.data.repositories.patients import PATIENT_ORDER
from app.data.repositories.providers import PROVIDER_ORDER
from app.data.repositories.records import RECORD_ORDER
from app.domain.access import require_admin
from app.domain.opaque_ids import NodeType
from resolvers.context import Info
from schema import types
from schema.connections import Connection, node_fields, root_connection, shows_rows
from schema.filters import (
    audit_event_list_filter,
    grant_list_filter,
    patient_list_filter,
    record_list_filter,
)
from schema.inputs import AuditEventFilter, BreakGlassGrantFilter, PatientFilter, RecordFilter

# The type of the object a global id names.
_NODES: dict[
    NodeType,
    type[
        types.Provider
        | types.Patient
        | types.MedicalRecord
        | types.Diagnosis
        | types.Attachment
        | types.BreakGlassGrant
    ],
] = {
    NodeType.PROVIDER: types.Provider,
    NodeType.PATIENT: types.Patient,
    NodeType.MEDICAL_RECORD: types.MedicalRecord,
    NodeType.DIAGNOSIS: types.Diagnosis,
    NodeType.ATTACHMENT: types.Attachment,
    NodeType.BREAK_GLASS_GRANT: types.BreakGlassGrant,
}


async def me(info: Info) -> types.Viewer:
    context = info.context
    viewer = await with_links(context.reads, context.signed_in())
    return types.Viewer(
        subject=viewer.subject,
        tenant_id=viewer.tenant_id,
        roles=sorted(viewer.roles),
        provider_id=viewer.provider_id,
        patient_id=viewer.patient_id,
    )


async def node(info: Info, id: strawberry.ID) -> types.Node | None:
    context = info.context
    context.reader()
    node_type, row_id = context.ids.decode_id(id)
    return await context.loaders.by_id(_NODES[node_type]).load(row_id)


async def patient(info: Info, id: strawberry.ID) -> types.Patient | None:
    context = info.context
    context.reader()
    return await context.loaders.by_id(types.Patient).load(
        context.ids.decode_typed_id(id, NodeType.PATIENT, "id")
    )


async def provider(info: Info, id: strawberry.ID) -> types.Provider | None:
    context = info.context
    context.reader()
    return await context.loaders.by_id(types.Provider).load(
        context.ids.decode_typed_id(id, NodeType.PROVIDER, "id")
    )


async def record(info: Info, id: strawberry.ID) -> types.MedicalRecord | None:
    context = info.context
    context.reader()
    return await context.loaders.by_id(types.MedicalRecord).load(
        context.ids.decode_typed_id(id, NodeType.MEDICAL_RECORD, "id")
    )


async def patient_list(
    info: Info,
    first: int | None = 20,
    after: str | None = None,
    filter: PatientFilter | None = None,
) -> Connection[types.Patient]:
    context = info.context
    viewer = context.reader()
    list_filter = patient_list_filter(context.ids, filter)
    return await root_connection(
        context,
        viewer,
        PATIENT_ORDER,
        page_request(context.ids, PATIENT_ORDER, first, after),
        fetch=lambda session, page: patients.patient_page(session, viewer, list_filter, page),
        count=lambda session: patients.count_patients(session, viewer, list_filter),
        node=partial(context.loaders.made, types.Patient),
        shown=shows_rows(info, "Query"),
        prefetch=partial(
            types.prefetch_selected,
            context.loaders,
            types.Patient,
            fields=node_fields(info, "Query"),
        ),
    )


async def provider_list(
    info: Info, first: int | None = 20, after: str | None = None
) -> Connection[types.Provider]:
    context = info.context
    viewer = context.reader()
    return await root_connection(
        context,
        viewer,
        PROVIDER_ORDER,
        page_request(context.ids, PROVIDER_ORDER, first, after),
        fetch=lambda session, page: providers.provider_page(session, viewer, page),
        count=lambda session: providers.count_providers(session, viewer),
        node=partial(context.loaders.made, types.Provider),
        shown=shows_rows(info, "Query"),
    )


async def record_list(
    info: Info,
    first: int | None = 20,
    after: str | None = None,
    filter: RecordFilter | None = None,
) -> Connection[types.MedicalRecord]:
    context = info.context
    viewer = context.reader()
    list_filter = record_list_filter(filter)
    fields = node_fields(info, "Query")
    with_json = types.selects_record_json(fields)
    return await root_connection(
        context,
        viewer,
        RECORD_ORDER,
        page_request(context.ids, RECORD_ORDER, first, after),
        fetch=lambda session, page: records.record_page(
            session, viewer, list_filter, page, with_json=with_json
        ),
        count=lambda session: records.count_records(session, viewer, list_filter),
        node=partial(context.loaders.made, types.MedicalRecord),
        shown=shows_rows(info, "Query"),
        prefetch=partial(
            types.prefetch_selected, context.loaders, types.MedicalRecord, fields=fields
        ),
    )


async def audit_event_list(
    info: Info,
    first: int | None = 20,
    after: str | None = None,
    filter: AuditEventFilter | None = None,
) -> Connection[types.AuditEvent]:
    context = info.context
    viewer = context.reader()
    require_admin(viewer)
    ids = context.ids
    list_filter = audit_event_list_filter(ids, filter)
    return await root_connection(
        context,
        viewer,
        audit_events.AUDIT_ORDER,
        page_request(ids, audit_events.AUDIT_ORDER, first, after),
        fetch=lambda session, page: audit_events.audit_event_page(
            session, viewer, list_filter, page
        ),
        count=lambda session: audit_events.count_audit_events(session, viewer, list_filter),
        node=partial(context.loaders.made, types.AuditEvent),
        shown=shows_rows(info, "Query"),
    )


async def break_glass_grant_list(
    info: Info,
    first: int | None = 20,
    after: str | None = None,
    filter: BreakGlassGrantFilter | None = None,
) -> Connection[types.BreakGlassGrant]:
    context = info.context
    viewer = context.reader()
    ids = context.ids
    list_filter = grant_list_filter(ids, filter)
    order = break_glass_grants.GRANT_ORDER
    return await root_connection(
        context,
        viewer,
        order,
        page_request(ids, order, first, after),
        fetch=lambda session, page: break_glass_grants.grant_page(
            session, viewer, list_filter, page
        ),
        count=lambda session: break_glass_grants.count_grants(session, viewer, list_filter),
        node=partial(context.loaders.made, types.BreakGlassGrant),
        shown=shows_rows(info, "Query"),
    )
