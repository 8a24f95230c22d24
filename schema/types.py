"""The contract's object types. A field shows a column or follows a relation as declared once
(schema/fields.py); relations are read through DataLoaders."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Optional, TypeAlias

import strawberry

import models as tables
from app.data.pagination import page_request
from app.data.repositories.access_log import ACCESS_LOG_ORDER
from app.data.repositories.json_trees import Relation
from app.data.repositories.patients import PATIENT_ORDER
from app.data.repositories.records import RECORD_ORDER
from app.domain.access import ACCESS_LOG_READERS
from app.domain.opaque_ids import NodeType, OpaqueIds
from app.domain.record_workflow import MAX_ATTACHMENTS, MAX_DIAGNOSES, MAX_STATUS_CHANGES
from app.domain.viewer import effective_role
from resolvers.cached_loads import now_or_later, required_now_or_later
from resolvers.context import Info
from schema.connections import (
    Connection,
    Edge,
    PageInfo,
    edges,
    node_fields,
    page_connection,
    page_info,
    shows_rows,
)
from schema.enums import (
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
from schema.fields import (
    column,
    column_metadata,
    relation_metadata,
    relations_of,
    values_from_row,
)
from schema.filters import patient_list_filter, record_list_filter
from schema.inputs import PatientFilter, RecordFilter
from schema.leaves import plain_resolver

if TYPE_CHECKING:
    from strawberry.dataloader import DataLoader

    from app.data.repositories.records import RecordParent
    from resolvers.loaders import Load, Loaders

# What each object type declares as the table its rows come from (Diagnosis has a field named
# `type`, which would hide the builtin inside its class).
TableClass: TypeAlias = type[tables.Base]


@strawberry.interface
class Node:
    node_type: ClassVar[NodeType]
    row_id: strawberry.Private[uuid.UUID]
    ids: strawberry.Private[OpaqueIds]

    # Sealed (an HMAC) only when a query selects it: most fetched nodes never show their id.
    @strawberry.field(
        description="Opaque global id; stable, unique across all types",
        metadata=column_metadata("id"),
    )
    @plain_resolver
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.ids.encode_id(self.node_type, self.row_id))


async def _records_connection(
    info: Info,
    parent: RecordParent,
    parent_id: uuid.UUID,
    first: int | None,
    after: str | None,
    filter_: RecordFilter | None,
) -> Connection[MedicalRecord]:
    context = info.context
    page = page_request(context.ids, RECORD_ORDER, first, after)
    list_filter = record_list_filter(filter_)
    loaders = context.loaders
    fields = node_fields(info, parent)
    rows = await loaders.records_of(
        parent, list_filter, page, with_json=selects_record_json(fields)
    ).load(parent_id)
    counts = loaders.record_counts_of(parent, list_filter)
    return await page_connection(
        rows,
        partial(loaders.made, MedicalRecord),
        ids=context.ids,
        order=RECORD_ORDER,
        page=page,
        count=lambda: counts.load(parent_id),
        shown=shows_rows(info, parent),
        prefetch=partial(prefetch_selected, loaders, MedicalRecord, fields=fields),
    )


# The fields of MedicalRecord computed from its JSON columns (app/data/repositories/records.py).
_RECORD_JSON_FIELDS = frozenset({"vitalSigns", "prescriptions", "labResults"})


def selects_record_json(fields: frozenset[str]) -> bool:
    """Whether a list whose nodes select ``fields`` must read the records' JSON columns."""
    return not fields.isdisjoint(_RECORD_JSON_FIELDS)


@strawberry.type
class Provider(Node):
    npi: str = column("npi", description="National Provider Identifier, 10 digits")
    given_name: str = column("given_name")
    family_name: str = column("family_name")
    specialty: str | None = column("specialty")
    email: str | None = column("email")
    active: bool = column("active")
    created_at: dt.datetime = column("created_at")
    node_type: ClassVar[NodeType] = NodeType.PROVIDER
    table: ClassVar[TableClass] = tables.Provider

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> Provider:
        return cls(
            ids=ids,
            row_id=row.id,
            **values_from_row(cls, row),
        )

    @strawberry.field
    async def patients(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: PatientFilter | None = None,
    ) -> Connection[Patient]:
        context = info.context
        page = page_request(context.ids, PATIENT_ORDER, first, after)
        list_filter = patient_list_filter(context.ids, filter)
        loaders = context.loaders
        rows = await loaders.patients_of_provider(list_filter, page).load(self.row_id)
        counts = loaders.patient_counts_of_provider(list_filter)
        return await page_connection(
            rows,
            partial(loaders.made, Patient),
            ids=context.ids,
            order=PATIENT_ORDER,
            page=page,
            count=lambda: counts.load(self.row_id),
            shown=shows_rows(info, "Provider"),
            prefetch=partial(
                prefetch_selected, loaders, Patient, fields=node_fields(info, "Provider")
            ),
        )

    @strawberry.field
    async def records(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: RecordFilter | None = None,
    ) -> Connection[MedicalRecord]:
        return await _records_connection(info, "provider", self.row_id, first, after, filter)


@strawberry.type
class Patient(Node):
    mrn: str = column("mrn", description="Medical record number, unique within a tenant")
    given_name: str = column("given_name")
    family_name: str = column("family_name")
    date_of_birth: dt.date = column("date_of_birth")
    sex: Sex = column("sex")
    email: str | None = column("email")
    phone: str | None = column("phone")
    preferred_language: str | None = column(
        "preferred_language", description="BCP 47 language tag, e.g. es-MX"
    )
    created_at: dt.datetime = column("created_at")
    updated_at: dt.datetime = column("updated_at")
    version: int = column(
        "version", description="Incremented on every change; pass it back as expectedVersion"
    )
    primary_provider_id: strawberry.Private[uuid.UUID | None]
    node_type: ClassVar[NodeType] = NodeType.PATIENT
    table: ClassVar[TableClass] = tables.Patient

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> Patient:
        return cls(
            ids=ids,
            row_id=row.id,
            primary_provider_id=row.primary_provider_id,
            **values_from_row(cls, row),
        )

    @strawberry.field(
        graphql_type=Provider | None, metadata=relation_metadata(Relation.PRIMARY_PROVIDER)
    )
    def primary_provider(self, info: Info) -> Provider | Awaitable[Provider | None] | None:
        if self.primary_provider_id is None:
            return None
        return now_or_later(info.context.loaders.by_id(Provider), self.primary_provider_id)

    @strawberry.field(metadata=relation_metadata(Relation.PATIENT_RECORDS))
    async def records(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: RecordFilter | None = None,
    ) -> Connection[MedicalRecord]:
        return await _records_connection(info, "patient", self.row_id, first, after, filter)

    @strawberry.field(
        graphql_type=Optional["AccessLogConnection"],
        metadata=relation_metadata(Relation.ACCESS_LOG),
        description=(
            "Every access to this patient's data, newest first. Admins and the patient only; "
            "null for everyone else."
        ),
    )
    async def access_log(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> AccessLogConnection | None:
        context = info.context
        if effective_role(context.reader()) not in ACCESS_LOG_READERS:
            return None
        ids = context.ids
        page = page_request(ids, ACCESS_LOG_ORDER, first, after)
        rows = await context.loaders.access_logs_of(page).load(self.row_id)

        def cursor_of(row: Any) -> str:
            return ids.encode_cursor(ACCESS_LOG_ORDER.kind, ACCESS_LOG_ORDER.cursor_values(row))

        shown = rows[: page.first]
        return AccessLogConnection(
            edges=edges(
                shown,
                [AccessLogEntry.from_row(row, ids) for row in shown],
                cursor_of,
                AccessLogEdge,
            ),
            page_info=page_info(
                shown,
                cursor_of,
                has_next_page=len(rows) > page.first,
                has_previous_page=page.after is not None,
            ),
        )


@strawberry.type
class VitalSigns:
    systolic_bp: int | None = None
    diastolic_bp: int | None = None
    heart_rate: int | None = None
    respiratory_rate: int | None = None
    temperature_c: float | None = None
    oxygen_saturation: int | None = None
    weight_kg: float | None = None
    height_cm: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> VitalSigns | None:
        if data is None:
            return None
        return cls(
            systolic_bp=data.get("systolicBp"),
            diastolic_bp=data.get("diastolicBp"),
            heart_rate=data.get("heartRate"),
            respiratory_rate=data.get("respiratoryRate"),
            temperature_c=data.get("temperatureC"),
            oxygen_saturation=data.get("oxygenSaturation"),
            weight_kg=data.get("weightKg"),
            height_cm=data.get("heightCm"),
        )


@strawberry.type
class Prescription:
    medication: str
    dosage: str
    frequency: str
    duration_days: int | None = None
    notes: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prescription:
        return cls(
            medication=data["medication"],
            dosage=data["dosage"],
            frequency=data["frequency"],
            duration_days=data.get("durationDays"),
            notes=data.get("notes"),
        )


@strawberry.type
class LabResult:
    test: str
    value: str
    unit: str | None = None
    reference_range: str | None = None
    abnormal: bool | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabResult:
        return cls(
            test=data["test"],
            value=data["value"],
            unit=data.get("unit"),
            reference_range=data.get("referenceRange"),
            abnormal=data.get("abnormal"),
        )


def _required_record(info: Info, record_id: uuid.UUID) -> MedicalRecord | Awaitable[MedicalRecord]:
    # A subscription's event has its record loaded already (resolvers/subscriptions.py): then
    # it is a plain value, and the event completes without a task.
    return required_now_or_later(info.context.loaders.by_id(MedicalRecord), record_id)


@strawberry.type
class Diagnosis(Node):
    icd10_code: str = column(
        "icd10_code", graphql_name="icd10Code", description="ICD-10 code, e.g. E11.9"
    )
    description: str = column("description")
    type: DiagnosisType = column("type")
    created_at: dt.datetime = column("created_at")
    record_id: strawberry.Private[uuid.UUID]
    patient_id: strawberry.Private[uuid.UUID]
    node_type: ClassVar[NodeType] = NodeType.DIAGNOSIS
    table: ClassVar[TableClass] = tables.Diagnosis

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> Diagnosis:
        return cls(
            ids=ids,
            row_id=row.id,
            record_id=row.record_id,
            patient_id=row.patient_id,
            **values_from_row(cls, row),
        )

    @strawberry.field(graphql_type="MedicalRecord")
    def record(self, info: Info) -> MedicalRecord | Awaitable[MedicalRecord]:
        return _required_record(info, self.record_id)


@strawberry.type
class Attachment(Node):
    file_name: str = column("file_name")
    content_type: str = column("content_type")
    size_bytes: int = column("size_bytes")
    checksum_sha256: str | None = column(
        "checksum_sha256",
        graphql_name="checksumSha256",
        description="Hex SHA-256 declared by the uploader",
    )
    status: AttachmentStatus = column("status")
    uploaded_at: dt.datetime | None = column("uploaded_at")
    created_at: dt.datetime = column("created_at")
    record_id: strawberry.Private[uuid.UUID]
    patient_id: strawberry.Private[uuid.UUID]
    storage_key: strawberry.Private[str]
    node_type: ClassVar[NodeType] = NodeType.ATTACHMENT
    table: ClassVar[TableClass] = tables.Attachment

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> Attachment:
        return cls(
            ids=ids,
            row_id=row.id,
            record_id=row.record_id,
            patient_id=row.patient_id,
            storage_key=row.storage_key,
            **values_from_row(cls, row),
        )

    @strawberry.field(graphql_type="MedicalRecord")
    def record(self, info: Info) -> MedicalRecord | Awaitable[MedicalRecord]:
        return _required_record(info, self.record_id)

    @strawberry.field(description="Short-lived presigned GET URL; null unless AVAILABLE")
    async def download_url(self, info: Info) -> str | None:
        if self.status is not AttachmentStatus.AVAILABLE:
            return None
        context = info.context
        # Every URL handed out is on the audit trail; the attachment itself was fetched under
        # the caller's read predicate, so whoever sees it may read its record.
        context.audit.touch_file(self.row_id, self.record_id, self.patient_id)
        return await context.storage.download_url(self.storage_key, self.file_name)


@strawberry.type
class RecordStatusEvent:
    sequence: str = strawberry.field(
        description=(
            "Position in the tenant's event stream: increases with every status change.\n"
            "Pass the last one seen as afterSequence to resume a subscription without a gap."
        )
    )
    previous_status: RecordStatus | None
    status: RecordStatus
    changed_at: dt.datetime
    changed_by: str = strawberry.field(description="Subject of the caller who made the change")
    reason: str | None
    record_id: strawberry.Private[uuid.UUID]
    patient_id: strawberry.Private[uuid.UUID]
    table: ClassVar[TableClass] = tables.RecordStatusEvent

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> RecordStatusEvent:
        # `ids` goes unused: an event shows no id of its own, and its record seals its id.
        return cls(
            sequence=str(row.sequence),
            record_id=row.record_id,
            patient_id=row.patient_id,
            previous_status=row.previous_status,
            status=row.status,
            changed_at=row.changed_at,
            changed_by=row.changed_by,
            reason=row.reason,
        )

    @strawberry.field(graphql_type="MedicalRecord")
    def record(self, info: Info) -> MedicalRecord | Awaitable[MedicalRecord]:
        return _required_record(info, self.record_id)


@strawberry.type
class MedicalRecord(Node):
    record_type: RecordType = column("record_type")
    visit_date: dt.datetime = column("visit_date")
    chief_complaint: str | None = column("chief_complaint")
    notes: str | None = column("notes")
    staff_note: str | None = column(
        "staff_note",
        description=(
            "For clinic staff only: null for patients, whatever the path that reaches the record"
        ),
    )
    confidentiality: Confidentiality = column("confidentiality")
    status: RecordStatus = column("status")
    finalized_at: dt.datetime | None = column("finalized_at")
    follow_up_date: dt.date | None = column("follow_up_date")
    created_at: dt.datetime = column("created_at")
    updated_at: dt.datetime = column("updated_at")
    version: int = column("version")
    patient_id: strawberry.Private[uuid.UUID]
    provider_id: strawberry.Private[uuid.UUID]
    # The JSON columns as stored; turned into objects only for the queries that select them.
    # Lists read them only when their query selects them (json_read).
    stored_vital_signs: strawberry.Private[Mapping[str, Any] | None]
    stored_prescriptions: strawberry.Private[list[Mapping[str, Any]]]
    stored_lab_results: strawberry.Private[list[Mapping[str, Any]]]
    json_read: strawberry.Private[bool]
    node_type: ClassVar[NodeType] = NodeType.MEDICAL_RECORD
    table: ClassVar[TableClass] = tables.MedicalRecord

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> MedicalRecord:
        return cls(
            ids=ids,
            row_id=row.id,
            patient_id=row.patient_id,
            provider_id=row.provider_id,
            stored_vital_signs=getattr(row, "vital_signs", None),
            stored_prescriptions=getattr(row, "prescriptions", []),
            stored_lab_results=getattr(row, "lab_results", []),
            json_read=hasattr(row, "vital_signs"),
            **values_from_row(cls, row),
        )

    @strawberry.field
    def vital_signs(self) -> VitalSigns | None:
        self._require_json()
        return VitalSigns.from_json(self.stored_vital_signs)

    @strawberry.field
    def prescriptions(self) -> list[Prescription]:
        self._require_json()
        return [Prescription.from_json(p) for p in self.stored_prescriptions]

    @strawberry.field
    def lab_results(self) -> list[LabResult]:
        self._require_json()
        return [LabResult.from_json(r) for r in self.stored_lab_results]

    def _require_json(self) -> None:
        # A list that left the JSON columns out must not answer these fields with empty values.
        if not self.json_read:
            raise LookupError("the JSON columns of this record were not read")

    # The relations are usually loaded already, by the page these records came in
    # (prefetch_selected): then they are plain values, and no task is made per record.

    @strawberry.field(graphql_type=Patient, metadata=relation_metadata(Relation.RECORD_PATIENT))
    def patient(self, info: Info) -> Patient | Awaitable[Patient]:
        return required_now_or_later(info.context.loaders.by_id(Patient), self.patient_id)

    @strawberry.field(graphql_type=Provider, metadata=relation_metadata(Relation.RECORD_PROVIDER))
    def provider(self, info: Info) -> Provider | Awaitable[Provider]:
        return required_now_or_later(info.context.loaders.by_id(Provider), self.provider_id)

    @strawberry.field(
        graphql_type=list[Diagnosis],
        metadata=relation_metadata(Relation.DIAGNOSES, most=MAX_DIAGNOSES),
    )
    def diagnoses(self, info: Info) -> list[Diagnosis] | Awaitable[list[Diagnosis]]:
        return now_or_later(info.context.loaders.of_record(Diagnosis), self.row_id)

    @strawberry.field(
        graphql_type=list[Attachment],
        metadata=relation_metadata(Relation.ATTACHMENTS, most=MAX_ATTACHMENTS),
    )
    def attachments(self, info: Info) -> list[Attachment] | Awaitable[list[Attachment]]:
        return now_or_later(info.context.loaders.of_record(Attachment), self.row_id)

    @strawberry.field(
        graphql_type=list[RecordStatusEvent],
        description="Every status change of this record, oldest first",
        metadata=relation_metadata(Relation.STATUS_HISTORY, most=MAX_STATUS_CHANGES),
    )
    def status_history(
        self, info: Info
    ) -> list[RecordStatusEvent] | Awaitable[list[RecordStatusEvent]]:
        return now_or_later(info.context.loaders.of_record(RecordStatusEvent), self.row_id)


@strawberry.type(
    description=(
        "Emergency access of one caller to one patient's records (RESTRICTED ones included),\n"
        "given with a reason, for a limited time; every read under it is audited with the grant."
    )
)
class BreakGlassGrant(Node):
    subject: str = column("subject", description="Subject of the caller who holds the grant")
    reason: str = column("reason")
    granted_at: dt.datetime = column("granted_at")
    expires_at: dt.datetime = column("expires_at")
    revoked_at: dt.datetime | None = column("revoked_at")
    revoked_by: str | None = column(
        "revoked_by", description="Subject of the caller who revoked it"
    )
    # Computed by the statement that read the row, from the database's clock
    # (app/domain/access.py's grant_active).
    active: bool = column("active")
    patient_id: strawberry.Private[uuid.UUID]
    provider_id: strawberry.Private[uuid.UUID | None]
    node_type: ClassVar[NodeType] = NodeType.BREAK_GLASS_GRANT
    table: ClassVar[TableClass] = tables.BreakGlassGrant

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> BreakGlassGrant:
        return cls(
            ids=ids,
            row_id=row.id,
            patient_id=row.patient_id,
            provider_id=row.provider_id,
            **values_from_row(cls, row),
        )

    @strawberry.field(graphql_type=Patient)
    def patient(self, info: Info) -> Patient | Awaitable[Patient]:
        return required_now_or_later(info.context.loaders.by_id(Patient), self.patient_id)

    @strawberry.field(
        graphql_type=Provider | None,
        description="The provider who holds the grant; null when an admin holds it",
    )
    def provider(self, info: Info) -> Provider | Awaitable[Provider | None] | None:
        if self.provider_id is None:
            return None
        return now_or_later(info.context.loaders.by_id(Provider), self.provider_id)


def _grant(
    info: Info, grant_id: uuid.UUID | None
) -> BreakGlassGrant | Awaitable[BreakGlassGrant | None] | None:
    if grant_id is None:
        return None
    return now_or_later(info.context.loaders.by_id(BreakGlassGrant), grant_id)


# What an access log entry's record ids are the ids of.
LOGGED_RECORDS = NodeType.MEDICAL_RECORD


@strawberry.type(description="One access to a patient's data, as the patient may see it.")
class AccessLogEntry:
    occurred_at: dt.datetime = column("occurred_at")
    action: AccessAction = column("action")
    actor: str = column(
        "actor",
        description=(
            "The provider's name when the caller is linked to a provider; otherwise a "
            "description such as 'clinic administrator'"
        ),
    )
    actor_role: Role | None = column("actor_role")
    record_ids: list[strawberry.ID] = column(
        "record_ids",
        description=(
            "Records the access touched (ids only; a record the reader may not see is not resolved)"
        ),
        ids_of=LOGGED_RECORDS,
    )
    break_glass_grant_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> AccessLogEntry:
        values = values_from_row(cls, row)
        values["record_ids"] = [
            strawberry.ID(ids.encode_id(LOGGED_RECORDS, i)) for i in row.record_ids
        ]
        return cls(break_glass_grant_id=row.break_glass_grant_id, **values)

    @strawberry.field(
        graphql_type=BreakGlassGrant | None,
        description="Set when the access happened under a break-glass grant",
    )
    def break_glass_grant(
        self, info: Info
    ) -> BreakGlassGrant | Awaitable[BreakGlassGrant | None] | None:
        return _grant(info, self.break_glass_grant_id)


@strawberry.type(name="AccessLogEdge")
class AccessLogEdge(Edge[AccessLogEntry]):
    pass


@strawberry.type
class AccessLogConnection:
    edges: list[AccessLogEdge]
    page_info: PageInfo


@strawberry.type(description="The authenticated caller, as the server understood the token.")
class Viewer:
    subject: str
    tenant_id: str | None = strawberry.field(
        description=(
            "Null when the token names no tenant and the subject is linked to no provider or "
            "patient"
        )
    )
    roles: list[Role] = strawberry.field(
        description="Empty when the token carries none of the known groups"
    )
    provider_id: strawberry.Private[uuid.UUID | None]
    patient_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The provider linked to this subject, if any")
    async def provider(self, info: Info) -> Provider | None:
        if self.provider_id is None:
            return None
        return await info.context.loaders.by_id(Provider).load(self.provider_id)

    @strawberry.field(description="The patient linked to this subject, if any")
    async def patient(self, info: Info) -> Patient | None:
        if self.patient_id is None:
            return None
        return await info.context.loaders.by_id(Patient).load(self.patient_id)


@strawberry.type(description="One operation that read or changed patient data (admins only).")
class AuditEvent:
    id: strawberry.ID
    occurred_at: dt.datetime
    tenant_id: str | None
    subject: str | None
    roles: list[str]
    operation_name: str | None
    operation_type: str
    query_sha256: str = strawberry.field(
        name="querySha256", description="SHA-256 of the query text (hex)"
    )
    patient_ids: list[strawberry.ID] = strawberry.field(
        description="Patients the operation touched"
    )
    record_ids: list[strawberry.ID] = strawberry.field(description="Records the operation touched")
    attachment_ids: list[strawberry.ID] = strawberry.field(
        description="Attachments whose download URL the operation issued, or which it changed"
    )
    outcome: AuditOutcome
    client_address: str | None
    request_id: str
    break_glass_grant_id: strawberry.Private[uuid.UUID | None]
    table: ClassVar[TableClass] = tables.AuditEvent

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> AuditEvent:
        return cls(
            id=strawberry.ID(str(row.id)),
            occurred_at=row.occurred_at,
            tenant_id=row.tenant_id,
            subject=row.subject,
            roles=list(row.roles),
            operation_name=row.operation_name,
            operation_type=row.operation_type,
            query_sha256=row.query_sha256,
            patient_ids=[
                strawberry.ID(ids.encode_id(NodeType.PATIENT, i)) for i in row.patient_ids
            ],
            record_ids=[strawberry.ID(ids.encode_id(LOGGED_RECORDS, i)) for i in row.record_ids],
            attachment_ids=[
                strawberry.ID(ids.encode_id(NodeType.ATTACHMENT, i)) for i in row.attachment_ids
            ],
            outcome=row.outcome,
            client_address=row.client_address,
            request_id=row.request_id,
            break_glass_grant_id=row.break_glass_grant_id,
        )

    @strawberry.field(
        graphql_type=BreakGlassGrant | None,
        description="The break-glass grant the operation read under, if any",
    )
    def break_glass_grant(
        self, info: Info
    ) -> BreakGlassGrant | Awaitable[BreakGlassGrant | None] | None:
        return _grant(info, self.break_glass_grant_id)


# What a page's objects prefetch for a relation selected on them: the loader, and the attribute of
# each object that is its key. (A page of records under a patient is a connection: not here.)
_PREFETCHED: dict[Relation, tuple[Callable[[Loaders], DataLoader[uuid.UUID, Any]], str]] = {
    Relation.PRIMARY_PROVIDER: (lambda loaders: loaders.by_id(Provider), "primary_provider_id"),
    Relation.RECORD_PROVIDER: (lambda loaders: loaders.by_id(Provider), "provider_id"),
    Relation.RECORD_PATIENT: (lambda loaders: loaders.by_id(Patient), "patient_id"),
    Relation.DIAGNOSES: (lambda loaders: loaders.of_record(Diagnosis), "row_id"),
    Relation.ATTACHMENTS: (lambda loaders: loaders.of_record(Attachment), "row_id"),
    Relation.STATUS_HISTORY: (lambda loaders: loaders.of_record(RecordStatusEvent), "row_id"),
}


async def prefetch_selected(
    loaders: Loaders, cls: type, objects: Sequence[Any], fields: Collection[str]
) -> None:
    """Loads, one batch per relation, what ``fields`` (GraphQL names, schema/connections.py's
    node_fields) follow from a page of ``objects`` of ``cls``; which relation each field follows
    is its declaration (schema/fields.py)."""
    relations = relations_of(cls)
    loads: list[Load] = []
    for name in fields:
        follows = relations.get(name)
        prefetched = None if follows is None else _PREFETCHED.get(follows)
        if prefetched is not None:
            loader, key = prefetched
            keys = [value for node in objects if (value := getattr(node, key)) is not None]
            loads.append((loader(loaders), keys))
    await loaders.prefetch(loads)
