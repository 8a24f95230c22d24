"""Ids, cursors, timestamps and dates written by PostgreSQL (app/data/repositories/json_trees.py)
are byte for byte the JSON the Python encoders write (app/domain/opaque_ids.py, the scalars of
schema/scalars.py), both built from app/domain/wire_formats.py: generated values, real database."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Date, DateTime, Integer, String, Uuid, bindparam, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from app.data.pagination import KeysetOrder
from app.data.repositories import audit_events, json_trees, patients, providers, records
from app.domain.opaque_ids import NodeType, OpaqueIds
from app.domain.wire_formats import timestamp_text
from schema.scalars import SCALARS
from tests.fuzz.conftest import fuzz_settings

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, FromClause
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.types import TypeEngine

# Every list a cursor is issued for, whether or not a one-statement tree pages it yet.
ORDERS: tuple[KeysetOrder, ...] = (
    patients.PATIENT_ORDER,
    records.RECORD_ORDER,
    providers.PROVIDER_ORDER,
    audit_events.AUDIT_ORDER,
)
# Session time zones the SQL must not depend on: half-hour and 45-minute offsets, DST both ways.
SESSION_ZONES = (
    "UTC",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "America/Los_Angeles",
    "Europe/Amsterdam",
)
_BERLIN = ZoneInfo("Europe/Berlin")
# asyncpg sends Python's first and last instant and date as PostgreSQL's -infinity and infinity
# (and reads infinite instants back without a zone), which neither side writes as text: the
# values here stay a microsecond, or a day, inside them.
_MICROSECOND = dt.timedelta(microseconds=1)
_EDGE_TIMES = (
    dt.datetime.min.replace(tzinfo=dt.UTC) + _MICROSECOND,
    dt.datetime.max.replace(tzinfo=dt.UTC) - _MICROSECOND,
    dt.datetime(999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
    dt.datetime(1000, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 4, 5, 6, 7, 100_000, tzinfo=dt.UTC),
    # Either side of Berlin's DST changes, and the hour that happens twice in autumn.
    dt.datetime(2025, 3, 30, 1, 59, 59, 999_999, tzinfo=_BERLIN),
    dt.datetime(2025, 3, 30, 3, 0, tzinfo=_BERLIN),
    dt.datetime(2025, 10, 26, 2, 30, tzinfo=_BERLIN, fold=0),
    dt.datetime(2025, 10, 26, 2, 30, tzinfo=_BERLIN, fold=1),
    # Local mean time: an offset of 19 minutes 32 seconds.
    dt.datetime(1900, 1, 1, 12, tzinfo=ZoneInfo("Europe/Amsterdam")),
)
_TIMESTAMPS = st.one_of(
    st.sampled_from(_EDGE_TIMES),
    # A day inside Python's years either way: any offset keeps the instant among them.
    st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.one_of(
            st.timezones(),
            st.builds(
                dt.timezone,
                st.timedeltas(
                    min_value=dt.timedelta(hours=-23, minutes=-59),
                    max_value=dt.timedelta(hours=23, minutes=59),
                ),
            ),
        ),
    ).flatmap(lambda value: st.sampled_from([value, value.replace(microsecond=0)])),
)
_DATES = st.dates(
    min_value=dt.date.min + dt.timedelta(days=1), max_value=dt.date.max - dt.timedelta(days=1)
)
_UUIDS = st.one_of(st.uuids(), st.sampled_from([uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]))
# What a text column can hold (no NUL, no lone surrogate), and strings JSON must escape.
_TEXTS = st.one_of(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
        max_size=100,
    ),
    st.sampled_from(
        [
            "",
            'Zoë "Q" \\ O\'Brien\n\t\x01\x1f </script> 💉',
            "\b\f\r\x7f\u0080\u2028\u2029\ufeff\U0010ffff",
            "\\u0041",
            "e\u0301",
        ]
    ),
)
_BIGINTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_KEYS = st.one_of(
    st.just("medrec-opaque-id-v1"),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
)


def _values_of(type_: TypeEngine[Any]) -> st.SearchStrategy[Any]:
    if isinstance(type_, DateTime):
        return _TIMESTAMPS
    if isinstance(type_, Uuid):
        return _UUIDS
    if isinstance(type_, Integer):
        return _BIGINTS
    assert isinstance(type_, String), type_
    return _TEXTS


async def _written_by_sql(
    engine: AsyncEngine,
    columns: Mapping[str, tuple[TypeEngine[Any], Sequence[Any]]],
    expressions: Callable[[FromClause], list[ColumnElement[str]]],
    parameters: dict[str, Any],
    session_zone: str = "UTC",
) -> list[tuple[str, ...]]:
    """``expressions`` over the rows made of ``columns`` (name: type, values), in their order."""
    rows = (
        func.unnest(*(bindparam(name, type_=ARRAY(type_)) for name, (type_, _) in columns.items()))
        .table_valued(
            *(column(name, type_) for name, (type_, _) in columns.items()),
            with_ordinality="position",
        )
        .render_derived(name="rows")
    )
    statement = select(*expressions(rows)).order_by(rows.c.position)
    values = {name: list(column_values) for name, (_, column_values) in columns.items()}
    async with engine.connect() as connection:
        # SET LOCAL: the pooled connection gets its zone back when the transaction ends.
        await connection.execute(select(func.set_config("TimeZone", session_zone, True)))
        result = await connection.execute(statement, {**values, **parameters})
        return [tuple(row) for row in result.all()]


def _in_utc(value: Any) -> Any:
    # An instant in the hour a DST change repeats (fold=1) equals nothing in another zone.
    return value.astimezone(dt.UTC) if isinstance(value, dt.datetime) else value


def _json(value: str) -> str:
    """The text a response carries for a string (responses are written with orjson)."""
    return orjson.dumps(value).decode()


@given(key=_KEYS, row_ids=st.lists(_UUIDS, min_size=1, max_size=40))
@fuzz_settings(default_examples=60)
async def test_ids_sealed_in_sql_are_those_sealed_in_python(
    engine: AsyncEngine, key: str, row_ids: list[uuid.UUID]
) -> None:
    ids = OpaqueIds(key)
    written = await _written_by_sql(
        engine,
        {"id": (Uuid(), row_ids)},
        lambda rows: [json_trees.id_json(node_type, rows.c.id) for node_type in NodeType],
        json_trees.id_parameters(ids),
    )
    assert written == [
        tuple(_json(ids.encode_id(node_type, row_id)) for node_type in NodeType)
        for row_id in row_ids
    ]


@pytest.mark.parametrize("order", ORDERS, ids=[order.kind for order in ORDERS])
@given(key=_KEYS, data=st.data())
@fuzz_settings(default_examples=60)
async def test_cursors_sealed_in_sql_are_those_sealed_in_python(
    engine: AsyncEngine, order: KeysetOrder, key: str, data: st.DataObject
) -> None:
    ids = OpaqueIds(key)
    row = st.tuples(*(_values_of(c.type) for c in order.columns))
    cursor_rows = data.draw(st.lists(row, min_size=1, max_size=30), label="rows")
    session_zone = data.draw(st.sampled_from(SESSION_ZONES), label="session zone")
    columns = {
        c.key: (c.type, [values[i] for values in cursor_rows]) for i, c in enumerate(order.columns)
    }
    written = await _written_by_sql(
        engine,
        columns,
        lambda rows: [json_trees.cursor_json(order, rows)],
        json_trees.id_parameters(ids),
        session_zone,
    )
    assert written == [(_json(ids.encode_cursor(order.kind, values)),) for values in cursor_rows]
    # And the cursor holds the row's values, so the next page starts after that row.
    for (sealed,), values in zip(written, cursor_rows, strict=True):
        assert order.decode(ids, orjson.loads(sealed)) == tuple(map(_in_utc, values))


@given(instants=st.lists(_TIMESTAMPS, min_size=1, max_size=40), data=st.data())
@fuzz_settings(default_examples=100)
async def test_timestamps_written_in_sql_are_the_datetime_scalars(
    engine: AsyncEngine, instants: list[dt.datetime], data: st.DataObject
) -> None:
    serialize = SCALARS[dt.datetime].serialize
    assert serialize is not None
    written = await _written_by_sql(
        engine,
        {"at": (DateTime(timezone=True), instants)},
        lambda rows: [json_trees.timestamp_json(rows.c.at)],
        {},
        data.draw(st.sampled_from(SESSION_ZONES), label="session zone"),
    )
    assert written == [(_json(serialize(instant)),) for instant in instants]


@given(days=st.lists(_DATES, min_size=1, max_size=40))
@fuzz_settings(default_examples=30)
async def test_dates_written_in_sql_are_the_date_scalars(
    engine: AsyncEngine, days: list[dt.date]
) -> None:
    serialize = SCALARS[dt.date].serialize
    assert serialize is not None
    written = await _written_by_sql(
        engine, {"day": (Date(), days)}, lambda rows: [json_trees.date_json(rows.c.day)], {}
    )
    assert written == [(_json(serialize(day)),) for day in days]


def test_a_timestamp_without_an_offset_is_not_written() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        timestamp_text(dt.datetime(2026, 1, 1, 12))
