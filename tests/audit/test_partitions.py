"""The audit tables' monthly partitions: made ahead of time by `medrec migrate`, the server's start
and `medrec audit-partitions`, detached (never emptied) past retention, append-only every one.

These tests make and detach partitions, so they run in a database of their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import column, delete, func, select, text, update
from sqlalchemy import table as table_clause
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.sql import Executable

from app.data import migrations
from app.data.audit_partitions import (
    MONTHS_AHEAD,
    PARTITIONED_TABLES,
    StrandedDefaultRows,
    create_partitions,
    maintain_partitions,
    month_start,
)
from app.ops import cli
from app.server.main import create_app
from app.settings import Settings
from tests.postgres import scratch_database

# An audit row of an explicit time; its audit_event_patients row comes from the table's trigger.
_INSERT = """
INSERT INTO audit_events (occurred_at, tenant_id, operation_type, query_sha256, outcome,
                          action, request_id, patient_ids)
VALUES (:occurred_at, 'partitions', 'query', 'sha', 'ok', 'VIEWED', :request_id,
        ARRAY[CAST(:patient_id AS uuid)])
"""


@pytest.fixture(scope="module")
def partitioned_url() -> Iterator[str]:
    with scratch_database() as url:
        migrations.upgrade(url)
        yield url


def _run(url: str, *statements: str | Executable, **parameters: Any) -> list[Any]:
    """Runs ``statements`` in one transaction; the rows of the last one, if it returns any."""

    async def run() -> list[Any]:
        engine = create_async_engine(url)
        rows: list[Any] = []
        try:
            async with engine.begin() as connection:
                for statement in statements:
                    if isinstance(statement, str):
                        statement = text(statement)
                    result = await connection.execute(statement, parameters)
                    rows = list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()
        return rows

    return asyncio.run(run())


def _count(url: str, table: str) -> int:
    [(count,)] = _run(url, select(func.count()).select_from(table_clause(table)))
    assert isinstance(count, int)
    return count


def _today(url: str) -> date:
    [(today,)] = _run(url, "SELECT (now() AT TIME ZONE 'UTC')::date")
    assert isinstance(today, date)
    return today


def _month(url: str, months_later: int) -> str:
    return f"{month_start(_today(url), months_later):%Y_%m}"


def _attached(url: str) -> dict[str, list[str]]:
    """Each audit table's partitions, by name."""
    rows = _run(
        url,
        "SELECT parent.relname, child.relname FROM pg_inherits "
        "JOIN pg_class parent ON parent.oid = inhparent "
        "JOIN pg_class child ON child.oid = inhrelid "
        "WHERE parent.relname IN ('audit_events', 'audit_event_patients') ORDER BY 2",
    )
    found: dict[str, list[str]] = {table: [] for table in PARTITIONED_TABLES}
    for table, name in rows:
        found[table].append(name)
    return found


def _months_due(url: str) -> dict[str, list[str]]:
    return {
        table: [f"{table}_{_month(url, n)}" for n in range(MONTHS_AHEAD + 1)]
        for table in PARTITIONED_TABLES
    }


def _drop_last_month_due(url: str) -> list[str]:
    """Drops the furthest partitions due (empty: they are in the future), as if not made yet."""
    names = [f"{table}_{_month(url, MONTHS_AHEAD)}" for table in PARTITIONED_TABLES]
    _run(url, *(f"DROP TABLE {name}" for name in names))
    return names


def test_migrate_makes_this_month_and_the_next_ones(partitioned_url: str) -> None:
    attached = _attached(partitioned_url)
    for table, due in _months_due(partitioned_url).items():
        assert set(due) <= set(attached[table])
        assert f"{table}_default" in attached[table]


def test_server_start_makes_the_partitions_due(partitioned_url: str, settings: Settings) -> None:
    dropped = _drop_last_month_due(partitioned_url)
    assert not set(dropped) & {
        name for names in _attached(partitioned_url).values() for name in names
    }

    async def start() -> None:
        application = create_app(settings.model_copy(update={"database_url": partitioned_url}))
        async with application.router.lifespan_context(application):
            pass

    asyncio.run(start())
    attached = _attached(partitioned_url)
    for table, due in _months_due(partitioned_url).items():
        assert set(due) <= set(attached[table])


def test_the_command_makes_partitions_due_and_detaches_expired_ones(
    partitioned_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    today = _today(partitioned_url)
    expired, kept = month_start(today, -73), month_start(today, -72)

    async def make_old_months() -> None:
        engine = create_async_engine(partitioned_url)
        try:
            async with engine.begin() as connection:
                for month in (expired, kept):
                    await create_partitions(connection, month.date(), months_ahead=0)
        finally:
            await engine.dispose()

    asyncio.run(make_old_months())
    for month, rows in ((expired, 3), (kept, 2)):
        for n in range(rows):
            _run(
                partitioned_url,
                _INSERT,
                occurred_at=month + timedelta(days=n, hours=5),
                request_id=f"old-{month:%Y-%m}-{n}",
                patient_id=uuid.uuid4(),
            )
    dropped = _drop_last_month_due(partitioned_url)

    monkeypatch.setenv("MEDREC_DATABASE_URL", partitioned_url)
    cli.main(["audit-partitions"])

    old = f"{expired:%Y_%m}"
    assert capsys.readouterr().out.splitlines() == [
        *(f"created {name}" for name in dropped),
        *(
            f"detached {table}_{old} as archived_{table}_{old} (its rows are kept there)"
            for table in PARTITIONED_TABLES
        ),
    ]
    attached = _attached(partitioned_url)
    for table in PARTITIONED_TABLES:
        assert f"{table}_{old}" not in attached[table]
        assert f"{table}_{kept:%Y_%m}" in attached[table]
        assert set(_months_due(partitioned_url)[table]) <= set(attached[table])
    # Detached, not deleted: the rows are in the archived tables, and no longer in the trail.
    for table in PARTITIONED_TABLES:
        assert _count(partitioned_url, f"archived_{table}_{old}") == 3
    for table in PARTITIONED_TABLES:
        _assert_append_only(partitioned_url, f"archived_{table}_{old}")
    before_retention = expired + timedelta(days=40)
    assert _run(
        partitioned_url,
        "SELECT count(*) FROM audit_events WHERE occurred_at < :before",
        before=before_retention,
    ) == [(2,)]

    cli.main(["audit-partitions"])
    assert capsys.readouterr().out.startswith("nothing to do")


def _assert_append_only(url: str, table: str) -> None:
    """UPDATE, DELETE and TRUNCATE of ``table`` are each refused, naming it."""
    rows = table_clause(table, column("tenant_id"))
    for statement in (
        update(rows).values(tenant_id="someone-else"),
        delete(rows),
        f"TRUNCATE {table}",
    ):
        with pytest.raises(DBAPIError) as refused:
            _run(url, statement)
        assert f"{table} is append-only" in str(refused.value.orig), statement


def test_every_audit_table_and_partition_is_append_only(
    partitioned_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    _run(partitioned_url, _INSERT, occurred_at=now, request_id="kept", patient_id=uuid.uuid4())
    made_by_the_command = _drop_last_month_due(partitioned_url)
    monkeypatch.setenv("MEDREC_DATABASE_URL", partitioned_url)
    cli.main(["audit-partitions"])
    assert capsys.readouterr().out.splitlines() == [f"created {n}" for n in made_by_the_command]

    tables = [
        *PARTITIONED_TABLES,
        *(f"{table}_{_month(partitioned_url, 0)}" for table in PARTITIONED_TABLES),
        *(f"{table}_default" for table in PARTITIONED_TABLES),
        *made_by_the_command,
    ]
    for table in tables:
        _assert_append_only(partitioned_url, table)
    assert _run(partitioned_url, "SELECT count(*) FROM audit_events WHERE request_id = 'kept'") == [
        (1,)
    ]


def test_rows_of_a_month_without_a_partition_are_kept_then_get_one(partitioned_url: str) -> None:
    later = month_start(_today(partitioned_url), MONTHS_AHEAD + 5) + timedelta(days=3)
    patient_id = uuid.uuid4()
    _run(partitioned_url, _INSERT, occurred_at=later, request_id="later", patient_id=patient_id)
    assert _run(
        partitioned_url,
        "SELECT tableoid::regclass::text FROM audit_events WHERE request_id = 'later'",
    ) == [("audit_events_default",)]
    for table in PARTITIONED_TABLES:
        assert f"{table}_{later:%Y_%m}" not in _attached(partitioned_url)[table]

    async def maintain() -> list[str]:
        engine = create_async_engine(partitioned_url)
        try:
            return (await maintain_partitions(engine, retention_months=None)).created
        finally:
            await engine.dispose()

    # The default partitions become the partitions of that month, rows and all.
    assert asyncio.run(maintain()) == [f"{table}_{later:%Y_%m}" for table in PARTITIONED_TABLES]
    assert _run(
        partitioned_url,
        "SELECT tableoid::regclass::text FROM audit_events WHERE request_id = 'later'",
    ) == [(f"audit_events_{later:%Y_%m}",)]
    assert _run(
        partitioned_url,
        "SELECT tableoid::regclass::text FROM audit_event_patients WHERE patient_id = :patient",
        patient=patient_id,
    ) == [(f"audit_event_patients_{later:%Y_%m}",)]
    for table in PARTITIONED_TABLES:
        assert _count(partitioned_url, f"{table}_default") == 0
        _assert_append_only(partitioned_url, f"{table}_{later:%Y_%m}")


def test_rows_of_the_default_partition_on_both_sides_of_a_partition_are_left_for_an_operator(
    partitioned_url: str,
) -> None:
    today = _today(partitioned_url)

    async def attempt() -> str:
        engine = create_async_engine(partitioned_url)
        try:
            async with engine.connect() as connection:
                transaction = await connection.begin()
                for months in (-200, MONTHS_AHEAD + 20):
                    await connection.execute(
                        text(_INSERT),
                        {
                            "occurred_at": month_start(today, months),
                            "request_id": f"stray-{months}",
                            "patient_id": uuid.uuid4(),
                        },
                    )
                with pytest.raises(StrandedDefaultRows) as refused:
                    await create_partitions(connection, today)
                await transaction.rollback()
        finally:
            await engine.dispose()
        return str(refused.value)

    assert asyncio.run(attempt()) == (
        f"audit_events_default holds rows from {month_start(today, -200):%Y-%m} to "
        f"{month_start(today, MONTHS_AHEAD + 20):%Y-%m}, on both sides of months that have "
        "partitions: move them into partitions by hand"
    )
