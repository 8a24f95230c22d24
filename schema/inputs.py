"""Input types of the Query side."""

from __future__ import annotations

import datetime as dt

import strawberry

from schema.enums import RecordStatus, RecordType


@strawberry.input
class PatientFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive prefix of given name, family name or MRN"
    )
    primary_provider_id: strawberry.ID | None = None


@strawberry.input
class RecordFilter:
    status: list[RecordStatus] | None = None
    record_type: list[RecordType] | None = None
    visited_after: dt.datetime | None = strawberry.field(
        default=None, description="Inclusive lower bound of visitDate"
    )
    visited_before: dt.datetime | None = strawberry.field(
        default=None, description="Exclusive upper bound of visitDate"
    )
