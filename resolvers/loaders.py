"""Per-request DataLoaders: one SQL statement per relation level, whatever the number of parents.

Each batch gets a session of its own from ``reads`` (app/data/request_reads.py): an ``AsyncSession``
must not be shared by the concurrent tasks GraphQL execution starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from strawberry.dataloader import DataLoader

import models as tables
from app.data.repositories import patients, providers, records
from app.data.repositories.json_trees import Relation
from app.domain.opaque_ids import NodeType
from resolvers.cached_loads import required
from schema.fields import relations_of
from schema.types import (
    Attachment,
    AuditEvent,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
    RecordStatusEvent,
)

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncSession

    from app.data.database import FetchedRow
    from app.data.pagination import PageRequest
    from app.data.repositories.patients import PatientListFilter
    from app.data.repositories.records import RecordListFilter, RecordParent
    from app.data.request_reads import ReaderSource
    from app.domain.audit import AuditTrail
    from app.domain.opaque_ids import OpaqueIds
    from app.domain.viewer import Viewer

K = TypeVar("K")
V = TypeVar("V")
# A loader and the keys to load with it.
Load: TypeAlias = "tuple[DataLoader[uuid.UUID, Any], list[uuid.UUID]]"


# What a page's nodes prefetch for a relation selected on them: the loader, and the attribute of
# each node that is its key. (A page of records under a patient is a connection: not here.)
_PREFETCHED: dict[Relation, tuple[Callable[[Loaders], DataLoader[uuid.UUID, Any]], str]] = {
    Relation.PRIMARY_PROVIDER: (lambda loaders: loaders.provider, "primary_provider_id"),
    Relation.RECORD_PROVIDER: (lambda loaders: loaders.provider, "provider_id"),
    Relation.RECORD_PATIENT: (lambda loaders: loaders.patient, "patient_id"),
    Relation.DIAGNOSES: (lambda loaders: loaders.diagnoses_of_record, "row_id"),
    Relation.ATTACHMENTS: (lambda loaders: loaders.attachments_of_record, "row_id"),
    Relation.STATUS_HISTORY: (lambda loaders: loaders.status_history_of_record, "row_id"),
}


class Loaders:
    def __init__(
        self,
        reads: ReaderSource,
        viewer: Viewer | None,
        ids: OpaqueIds,
        audit: AuditTrail,
    ) -> None:
        self._reads = reads
        self._viewer = viewer
        self._ids = ids
        self._audit = audit
        self._keyed: dict[Hashable, DataLoader[Any, Any]] = {}

    def with_trail(self, audit: AuditTrail) -> Loaders:
        """Loaders for the same caller and connection, noting into ``audit``, with caches of
        their own."""
        return Loaders(self._reads, self._viewer, self._ids, audit)

    # Made when first used: most requests need two or three of them, and an idle subscription
    # none (they count in its memory).

    @cached_property
    def provider(self) -> DataLoader[uuid.UUID, Provider | None]:
        return self._by_id(providers.providers_by_ids, self.provider_node)

    @cached_property
    def patient(self) -> DataLoader[uuid.UUID, Patient | None]:
        return self._by_id(patients.patients_by_ids, self.patient_node)

    @cached_property
    def record(self) -> DataLoader[uuid.UUID, MedicalRecord | None]:
        return self._by_id(records.records_by_ids, self.record_node)

    @cached_property
    def diagnosis(self) -> DataLoader[uuid.UUID, Diagnosis | None]:
        return self._by_id(records.diagnoses_by_ids, self.diagnosis_node)

    @cached_property
    def attachment(self) -> DataLoader[uuid.UUID, Attachment | None]:
        return self._by_id(records.attachments_by_ids, self.attachment_node)

    @cached_property
    def diagnoses_of_record(self) -> DataLoader[uuid.UUID, list[Diagnosis]]:
        return self._children(records.diagnoses_of_records, self.diagnosis_node)

    @cached_property
    def attachments_of_record(self) -> DataLoader[uuid.UUID, list[Attachment]]:
        return self._children(records.attachments_of_records, self.attachment_node)

    @cached_property
    def status_history_of_record(self) -> DataLoader[uuid.UUID, list[RecordStatusEvent]]:
        return self._children(records.status_events_of_records, self.status_event_node)

    # Rows become GraphQL objects here, and the audit trail notes what the caller is handed.

    def provider_node(self, row: Any) -> Provider:
        self._audit.touch_row(tables.Provider, row)
        return Provider.from_row(row, self._ids)

    def patient_node(self, row: Any) -> Patient:
        self._audit.touch_row(tables.Patient, row)
        return Patient.from_row(row, self._ids)

    def record_node(self, row: Any) -> MedicalRecord:
        self._audit.touch_row(tables.MedicalRecord, row)
        return MedicalRecord.from_row(row, self._ids)

    def diagnosis_node(self, row: Any) -> Diagnosis:
        self._audit.touch_row(tables.Diagnosis, row)
        return Diagnosis.from_row(row, self._ids)

    def attachment_node(self, row: Any) -> Attachment:
        self._audit.touch_row(tables.Attachment, row)
        return Attachment.from_row(row, self._ids)

    def status_event_node(self, row: Any) -> RecordStatusEvent:
        self._audit.touch_row(tables.RecordStatusEvent, row)
        return RecordStatusEvent.from_row(row)

    def audit_event_node(self, row: Any) -> AuditEvent:
        self._audit.touch_row(tables.AuditEvent, row)
        return AuditEvent.from_row(row, self._ids)

    def by_node_type(self, node_type: NodeType) -> DataLoader[uuid.UUID, Any]:
        loaders: dict[NodeType, DataLoader[uuid.UUID, Any]] = {
            NodeType.PROVIDER: self.provider,
            NodeType.PATIENT: self.patient,
            NodeType.MEDICAL_RECORD: self.record,
            NodeType.DIAGNOSIS: self.diagnosis,
            NodeType.ATTACHMENT: self.attachment,
        }
        return loaders[node_type]

    async def _run(self, query: Callable[..., Awaitable[V]], *args: Any) -> V:
        # Resolvers reach a loader only after the context has checked the caller.
        assert self._viewer is not None
        async with self._reads() as session:
            return await query(session, self._viewer, *args)

    def _by_id(
        self,
        query: Callable[[AsyncSession, Viewer, Sequence[uuid.UUID]], Awaitable[list[FetchedRow]]],
        convert: Callable[[Any], V],
    ) -> DataLoader[uuid.UUID, V | None]:
        async def load(keys: list[uuid.UUID]) -> list[V | None]:
            rows = {row.id: row for row in await self._run(query, keys)}
            return [None if (row := rows.get(key)) is None else convert(row) for key in keys]

        return DataLoader(load_fn=load)

    def _children(
        self,
        query: Callable[..., Awaitable[dict[uuid.UUID, list[FetchedRow]]]],
        convert: Callable[[Any], V],
    ) -> DataLoader[uuid.UUID, list[V]]:
        async def load(keys: list[uuid.UUID]) -> list[list[V]]:
            grouped = await self._run(query, keys)
            return [[convert(row) for row in grouped[key]] for key in keys]

        return DataLoader(load_fn=load)

    def _grouped(
        self, key: Hashable, query: Callable[[list[uuid.UUID]], Awaitable[dict[uuid.UUID, V]]]
    ) -> DataLoader[uuid.UUID, V]:
        """One loader per distinct set of connection arguments: equal arguments batch together."""
        loader = self._keyed.get(key)
        if loader is None:

            async def load(keys: list[uuid.UUID]) -> list[V]:
                grouped = await query(keys)
                return [grouped[k] for k in keys]

            loader = self._keyed[key] = DataLoader(load_fn=load)
        return loader

    def records_of(
        self, parent: RecordParent, filter_: RecordListFilter, page: PageRequest, with_json: bool
    ) -> DataLoader[uuid.UUID, list[FetchedRow]]:
        query = partial(records.records_of_parents, with_json=with_json)
        return self._grouped(
            ("records_of", parent, filter_, page, with_json),
            lambda keys: self._run(query, parent, keys, filter_, page),
        )

    def record_counts_of(
        self, parent: RecordParent, filter_: RecordListFilter
    ) -> DataLoader[uuid.UUID, int]:
        return self._grouped(
            ("record_counts_of", parent, filter_),
            lambda keys: self._run(records.count_records_of_parents, parent, keys, filter_),
        )

    def patients_of_provider(
        self, filter_: PatientListFilter, page: PageRequest
    ) -> DataLoader[uuid.UUID, list[FetchedRow]]:
        return self._grouped(
            ("patients_of_provider", filter_, page),
            lambda keys: self._run(patients.patients_of_providers, keys, filter_, page),
        )

    def patient_counts_of_provider(self, filter_: PatientListFilter) -> DataLoader[uuid.UUID, int]:
        return self._grouped(
            ("patient_counts_of_provider", filter_),
            lambda keys: self._run(patients.count_patients_of_providers, keys, filter_),
        )

    async def required_record(self, record_id: uuid.UUID) -> MedicalRecord:
        return required(await self.record.load(record_id))

    # A page of nodes loads, one batch per relation, what the query selects on those nodes; the
    # relation fields then find it in the loaders' caches and complete without a task per node.
    # `fields` are the GraphQL names selected on the nodes (resolvers/connections.py); which
    # relation each follows is its field's declaration (schema/fields.py).

    async def prefetch(
        self,
        node_type: type,
        nodes: Sequence[Any],
        fields: Collection[str],
    ) -> None:
        relations = relations_of(node_type)
        loads: list[Load] = []
        for name in fields:
            follows = relations.get(name)
            prefetched = None if follows is None else _PREFETCHED.get(follows)
            if prefetched is not None:
                loader, key = prefetched
                keys = [value for node in nodes if (value := getattr(node, key)) is not None]
                loads.append((loader(self), keys))
        await self._prefetch(loads)

    async def _prefetch(self, relations: Sequence[Load]) -> None:
        pages = [self._primer(loader).load(tuple(keys)) for loader, keys in relations if keys]
        if pages:
            # A failed batch leaves its keys unloaded; the fields that need them load them
            # again, and report the error.
            await asyncio.gather(*pages, return_exceptions=True)

    def _primer(
        self, target: DataLoader[uuid.UUID, Any]
    ) -> DataLoader[tuple[uuid.UUID, ...], None]:
        """Fills ``target``'s cache with the keys of many pages in one batch: a future per page,
        where ``load_many`` would make (and call back) a future per key."""
        primer = self._keyed.get(("primer", id(target)))
        if primer is None:

            async def prime(pages: list[tuple[uuid.UUID, ...]]) -> list[None]:
                cached = target.cache_map
                keys = list(
                    dict.fromkeys(k for page in pages for k in page if cached.get(k) is None)
                )
                if keys:
                    target.prime_many(dict(zip(keys, await target.load_fn(keys), strict=True)))
                return [None] * len(pages)

            primer = self._keyed[("primer", id(target))] = DataLoader(load_fn=prime, cache=False)
        return primer
