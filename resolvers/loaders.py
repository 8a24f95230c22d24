"""Per-request DataLoaders: one SQL statement per relation level, whatever the number of parents.

Each batch gets a session of its own from ``reads`` (app/data/request_reads.py): an ``AsyncSession``
must not be shared by the concurrent tasks GraphQL execution starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeAlias, TypeVar

from strawberry.dataloader import DataLoader

import models as tables
from app.data.repositories import access_log, break_glass_grants, patients, providers, records

if TYPE_CHECKING:
    import uuid

    from app.data.database import FetchedRow, Reader
    from app.data.pagination import PageRequest
    from app.data.repositories.patients import PatientListFilter
    from app.data.repositories.records import RecordListFilter, RecordParent
    from app.data.request_reads import ReaderSource
    from app.domain.audit import AuditTrail
    from app.domain.opaque_ids import OpaqueIds
    from app.domain.viewer import Viewer

V = TypeVar("V")
# A loader and the keys to load with it.
Load: TypeAlias = "tuple[DataLoader[uuid.UUID, Any], list[uuid.UUID]]"


class RowObject(Protocol):
    """A GraphQL object made from one row: its type declares the row's table and makes itself
    from the row (schema/types.py)."""

    table: ClassVar[type[tables.Base]]

    @classmethod
    def from_row(cls, row: Any, ids: OpaqueIds) -> Self: ...


ObjectT = TypeVar("ObjectT", bound=RowObject)

# The statement reading a table's rows by id, and the one reading its rows under records (by the
# records' ids).
RowsByIds: TypeAlias = (
    "Callable[[Reader, Viewer, Sequence[uuid.UUID]], Awaitable[list[FetchedRow]]]"
)
RowsByParent: TypeAlias = (
    "Callable[[Reader, Viewer, Sequence[uuid.UUID]], Awaitable[dict[uuid.UUID, list[FetchedRow]]]]"
)
_BY_IDS: dict[type[tables.Base], RowsByIds] = {
    tables.Provider: providers.providers_by_ids,
    tables.Patient: patients.patients_by_ids,
    tables.MedicalRecord: records.records_by_ids,
    tables.Diagnosis: records.diagnoses_by_ids,
    tables.Attachment: records.attachments_by_ids,
    tables.BreakGlassGrant: break_glass_grants.grants_by_ids,
}
_OF_RECORDS: dict[type[tables.Base], RowsByParent] = {
    tables.Diagnosis: records.diagnoses_of_records,
    tables.Attachment: records.attachments_of_records,
    tables.RecordStatusEvent: records.status_events_of_records,
}


class Loaders:
    """The request's DataLoaders, asked for by the object type they load (``by_id(Patient)``),
    which makes its objects from the rows: the schema's types read their relations through these,
    so these name none of them."""

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
        # Made when first used: most requests need two or three of them, and an idle
        # subscription none (they count in its memory).
        self._by_ids: dict[type[RowObject], DataLoader[uuid.UUID, Any]] = {}
        self._of_records: dict[type[RowObject], DataLoader[uuid.UUID, Any]] = {}
        self._keyed: dict[Hashable, DataLoader[Any, Any]] = {}

    def with_trail(self, audit: AuditTrail) -> Loaders:
        """Loaders for the same caller and connection, noting into ``audit``, with caches of
        their own."""
        return Loaders(self._reads, self._viewer, self._ids, audit)

    def by_id(self, cls: type[ObjectT]) -> DataLoader[uuid.UUID, ObjectT | None]:
        loader = self._by_ids.get(cls)
        if loader is None:
            loader = self._by_ids[cls] = self._by_id(_BY_IDS[cls.table], partial(self.made, cls))
        return loader

    def of_record(self, cls: type[ObjectT]) -> DataLoader[uuid.UUID, list[ObjectT]]:
        """The objects of ``cls`` under each record, by the record's id."""
        loader = self._of_records.get(cls)
        if loader is None:
            loader = self._of_records[cls] = self._children(
                _OF_RECORDS[cls.table], partial(self.made, cls)
            )
        return loader

    def made(self, cls: type[ObjectT], row: Any) -> ObjectT:
        """``row`` as an object of ``cls``; the audit trail notes what the caller is handed."""
        self._audit.touch_row(cls.table, row)
        return cls.from_row(row, self._ids)

    async def _run(self, query: Callable[..., Awaitable[V]], *args: Any) -> V:
        # Resolvers reach a loader only after the context has checked the caller.
        assert self._viewer is not None
        async with self._reads() as session:
            return await query(session, self._viewer, *args)

    def _by_id(
        self,
        query: RowsByIds,
        convert: Callable[[Any], V],
    ) -> DataLoader[uuid.UUID, V | None]:
        async def load(keys: list[uuid.UUID]) -> list[V | None]:
            rows = {row.id: row for row in await self._run(query, keys)}
            return [None if (row := rows.get(key)) is None else convert(row) for key in keys]

        return DataLoader(load_fn=load)

    def _children(
        self,
        query: RowsByParent,
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

    def access_logs_of(self, page: PageRequest) -> DataLoader[uuid.UUID, list[FetchedRow]]:
        """Each patient's page of its access log, by the patient's id."""
        return self._grouped(
            ("access_logs_of", page),
            lambda keys: self._run(access_log.access_logs_of_patients, keys, page),
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

    # A page of objects loads, one batch per relation, what the query selects on them; the
    # relation fields then find it in the loaders' caches and complete without a task per object.
    # Which loads a selection makes is the schema's to say (schema/types.py).

    async def prefetch(self, loads: Sequence[Load]) -> None:
        pages = [self._primer(loader).load(tuple(keys)) for loader, keys in loads if keys]
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
