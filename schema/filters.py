"""GraphQL filter inputs to repository filters, validating as they go."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.data.repositories import audit_events
from app.data.repositories.break_glass_grants import GrantListFilter
from app.data.repositories.patients import PatientListFilter
from app.data.repositories.records import RecordListFilter
from app.domain import validation
from app.domain.opaque_ids import NodeType

if TYPE_CHECKING:
    from datetime import datetime

    from app.domain.opaque_ids import OpaqueIds
    from schema.inputs import (
        AuditEventFilter,
        BreakGlassGrantFilter,
        PatientFilter,
        RecordFilter,
    )

MAX_SEARCH_LENGTH = 100


def patient_list_filter(ids: OpaqueIds, filter_: PatientFilter | None) -> PatientListFilter:
    if filter_ is None:
        return PatientListFilter()
    search = validation.optional_text(filter_.search, "filter.search", max_length=MAX_SEARCH_LENGTH)
    provider_id = (
        None
        if filter_.primary_provider_id is None
        else ids.decode_typed_id(
            filter_.primary_provider_id, NodeType.PROVIDER, "filter.primaryProviderId"
        )
    )
    return PatientListFilter(search=search, primary_provider_id=provider_id)


def record_list_filter(filter_: RecordFilter | None) -> RecordListFilter:
    if filter_ is None:
        return RecordListFilter()
    return RecordListFilter(
        statuses=None if filter_.status is None else tuple(filter_.status),
        record_types=None if filter_.record_type is None else tuple(filter_.record_type),
        visited_after=_instant(filter_.visited_after, "filter.visitedAfter"),
        visited_before=_instant(filter_.visited_before, "filter.visitedBefore"),
    )


def audit_event_list_filter(
    ids: OpaqueIds, filter_: AuditEventFilter | None
) -> audit_events.AuditEventFilter:
    if filter_ is None:
        return audit_events.AuditEventFilter()
    return audit_events.AuditEventFilter(
        patient_id=(
            None
            if filter_.patient_id is None
            else ids.decode_typed_id(filter_.patient_id, NodeType.PATIENT, "filter.patientId")
        ),
        occurred_after=_instant(filter_.occurred_after, "filter.occurredAfter"),
        occurred_before=_instant(filter_.occurred_before, "filter.occurredBefore"),
    )


def grant_list_filter(ids: OpaqueIds, filter_: BreakGlassGrantFilter | None) -> GrantListFilter:
    if filter_ is None:
        return GrantListFilter()
    return GrantListFilter(
        patient_id=(
            None
            if filter_.patient_id is None
            else ids.decode_typed_id(filter_.patient_id, NodeType.PATIENT, "filter.patientId")
        ),
        active_only=bool(filter_.active_only),
    )


def _instant(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else validation.instant(value, field)
