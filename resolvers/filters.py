"""GraphQL filter inputs to repository filters, validating as they go."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.errors import BadUserInput
from app.opaque_ids import NodeType
from app.repositories.patients import PatientListFilter
from app.repositories.records import RecordListFilter

if TYPE_CHECKING:
    from app.opaque_ids import OpaqueIds
    from schema.inputs import PatientFilter, RecordFilter

MAX_SEARCH_LENGTH = 100


def patient_list_filter(ids: OpaqueIds, filter_: PatientFilter | None) -> PatientListFilter:
    if filter_ is None:
        return PatientListFilter()
    search = filter_.search.strip() if filter_.search else None
    if search and len(search) > MAX_SEARCH_LENGTH:
        raise BadUserInput(f"filter.search: at most {MAX_SEARCH_LENGTH} characters")
    provider_id = (
        None
        if filter_.primary_provider_id is None
        else ids.decode_typed_id(
            filter_.primary_provider_id, NodeType.PROVIDER, "filter.primaryProviderId"
        )
    )
    return PatientListFilter(search=search or None, primary_provider_id=provider_id)


def record_list_filter(filter_: RecordFilter | None) -> RecordListFilter:
    if filter_ is None:
        return RecordListFilter()
    return RecordListFilter(
        statuses=None if filter_.status is None else tuple(filter_.status),
        record_types=None if filter_.record_type is None else tuple(filter_.record_type),
        visited_after=filter_.visited_after,
        visited_before=filter_.visited_before,
    )
