"""The contract's custom scalars: offset-aware DateTime, calendar Date and JSON."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

from app.domain.wire_formats import date_text, timestamp_text


def _parse_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO-8601 string")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        # A clinic's local midnight is not a UTC midnight: refuse to guess.
        raise ValueError("DateTime must include a UTC offset, e.g. 2026-11-23T10:15:00+00:00")
    return parsed


def _parse_date(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise ValueError("Date must be an ISO-8601 string")
    return dt.date.fromisoformat(value)


SCALARS: dict[object, ScalarDefinition] = {
    dt.datetime: strawberry.scalar(
        name="DateTime",
        description="ISO-8601 date-time with a UTC offset, e.g. 2026-11-23T10:15:00+00:00",
        serialize=timestamp_text,
        parse_value=_parse_datetime,
    ),
    dt.date: strawberry.scalar(
        name="Date",
        description="ISO-8601 calendar date, e.g. 1984-02-29",
        serialize=date_text,
        parse_value=_parse_date,
    ),
}

__all__ = ["JSON", "SCALARS"]
