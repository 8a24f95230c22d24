"""The audit log at the volumes of years of use (README, "Benchmarks"; not part of `make test`).

``python -m bench.audit_scale writer``: rows a second through the group-committing AuditWriter,
from concurrent tasks each appending its rows one after another (as requests do), into a fresh
database migrated to head.

``python -m bench.audit_scale lookups``: generates audit rows with generate_series (10 million
by default, over 36 months, once: kept in the database ``medrec_audit_scale``), then EXPLAIN
ANALYZEs the first page and a page 50 pages deep of a patient with 5,000 rows and of one with
20, as app/data/repositories/audit_events.py reads them (audit_event_patients) and, with
``--compare-gin``, as a GIN index on ``patient_ids`` would (built for the run, dropped after).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import Select, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.data import migrations
from app.data.audit_partitions import create_partitions, database_today, month_start
from app.data.audit_writer import AuditWriter
from app.data.database import create_engine
from app.data.pagination import PageRequest, page_parameters, paged
from app.data.repositories.audit_events import AUDIT_ORDER, AuditEventFilter, page_statement
from app.domain.audit import AuditTrail
from app.domain.viewer import Viewer
from app.settings import Settings
from bench.database import Database, bench_database
from models import AuditEvent
from models.enums import AuditOutcome, Role

WRITER_DATABASE = "medrec_audit_writer"
SCALE_DATABASE = "medrec_audit_scale"
SCALE_TENANT = "scale"
SCALE_MONTHS = 36
PAGE = 20
# Patient 0 is named by every 2,000th row (5,000 of 10 million), patient 1 by 20 rows; every
# 20th row is a list naming 20 others, every other row one of the others. Patient n's id is
# md5('bench-patient-<n>') (``_patient_id``).
HEAVY, LIGHT = 0, 1
_GENERATE = """
INSERT INTO audit_events (occurred_at, tenant_id, subject, roles, operation_type, query_sha256,
                          patient_ids, outcome, action, client_address, request_id)
SELECT $3::timestamptz + (i - 1) * $4::interval, $6, 'bench-admin', '{ADMIN}', 'query',
       md5(i::text) || md5(i::text),
       CASE WHEN i % 20 = 0 THEN ARRAY(SELECT md5('bench-patient-' || 2 + (i + k) % 9998)::uuid
                                       FROM generate_series(0, 19) k)
            WHEN i % 2000 = 1 THEN ARRAY[md5('bench-patient-0')::uuid]
            WHEN i % ($5::bigint / 20) = 3 THEN ARRAY[md5('bench-patient-1')::uuid]
            ELSE ARRAY[md5('bench-patient-' || 2 + i % 9998)::uuid] END,
       'ok', 'VIEWED', '10.0.0.1', md5(i::text)
FROM generate_series($1::bigint, $2::bigint) i
"""


def _event(tenant_id: str, patients: list[uuid.UUID]) -> dict[str, Any]:
    viewer = Viewer(
        subject="bench-admin",
        roles=frozenset({Role.ADMIN}),
        tenant_id=tenant_id,
        provider_id=None,
        patient_id=None,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    trail = AuditTrail(request_id=uuid.uuid4().hex, client_address="10.0.0.1", viewer=viewer)
    trail.describe_operation("Bench", "query", "{ patient { id } }")
    trail.touch_tree(patients, [])
    return trail.event(AuditOutcome.OK)


async def _ensure_database(server: Database, name: str) -> str:
    connection = await asyncpg.connect(server.url)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return _url_of(server, name)


def _url_of(server: Database, name: str) -> str:
    return Database(make_url(server.url).set(database=name).render_as_string(False)).sqlalchemy_url


async def _recreate(server: Database, name: str) -> str:
    connection = await asyncpg.connect(server.url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return _url_of(server, name)


async def _append_all(url: str, appends: int, tasks: int, patients_per_row: int) -> float:
    engine = create_engine(Settings(database_url=url))
    writer = AuditWriter(engine)
    patients = [uuid.uuid4() for _ in range(10_000)]
    per_task = appends // tasks
    events = [
        [
            _event("bench", patients[(t * per_task + i) % 9_000 :][:patients_per_row])
            for i in range(per_task)
        ]
        for t in range(tasks)
    ]

    async def one_task(mine: list[dict[str, Any]]) -> None:
        for event in mine:
            await writer.append(event)

    try:
        await asyncio.gather(*(one_task(e) for e in events[:2]))  # connections, prepared statements
        started = time.perf_counter()
        await asyncio.gather(*(one_task(e) for e in events))
        elapsed = time.perf_counter() - started
    finally:
        await writer.stop()
        await engine.dispose()
    return per_task * tasks / elapsed


def writer(args: argparse.Namespace) -> None:
    with bench_database() as server:
        url = asyncio.run(_recreate(server, WRITER_DATABASE))
        migrations.upgrade(url)
        for patients_per_row in args.patients_per_row:
            rates = [
                asyncio.run(_append_all(url, args.appends, args.tasks, patients_per_row))
                for _ in range(args.repeat)
            ]
            print(
                f"writer: {args.appends} appends from {args.tasks} tasks, "
                f"{patients_per_row} patient(s) a row: "
                + ", ".join(f"{rate:,.0f}" for rate in rates)
                + " rows/s",
                flush=True,
            )


async def _generate(url: str, rows: int) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            generated = (
                await connection.execute(select(func.count()).select_from(AuditEvent))
            ).scalar_one()
        if generated == rows:
            print(f"lookups: {rows:,} audit rows already there", flush=True)
            return
        if generated:
            raise SystemExit(f"{SCALE_DATABASE} holds {generated:,} rows: drop it first")
        async with engine.begin() as connection:
            today = await database_today(connection)
            for months_back in range(SCALE_MONTHS, 0, -1):
                await create_partitions(connection, month_start(today, -months_back), 0)
        first = month_start(today, -SCALE_MONTHS)
        step = (datetime.now(UTC) - first) / rows
        driver = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            # A million rows a statement; the table's trigger writes their audit_event_patients.
            chunk = 1_000_000
            for start in range(1, rows + 1, chunk):
                end = min(rows, start + chunk - 1)
                started = time.perf_counter()
                await driver.execute(_GENERATE, start, end, first, step, rows, SCALE_TENANT)
                print(
                    f"lookups: audit rows {start:,}-{end:,} "
                    f"({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
            await driver.execute("VACUUM ANALYZE")
        finally:
            await driver.close()
    finally:
        await engine.dispose()


def _compiled(statement: Select[Any], page: PageRequest) -> tuple[str, list[Any]]:
    """The statement's text and arguments as the app sends them (asyncpg, positional)."""
    compiled = statement.compile(dialect=postgresql.asyncpg.dialect())
    # With the page size written into the text (paged's size_in_text), as it is when run.
    state = compiled.construct_expanded_state(page_parameters(page))
    return state.statement, [state.parameters[name] for name in state.positiontup or ()]


async def _explain(
    connection: asyncpg.Connection, sql: str, arguments: list[Any]
) -> tuple[float, float, int]:
    """(planning ms, execution ms, rows) of one EXPLAIN ANALYZE."""
    [[plan]] = await connection.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *arguments)
    [result] = json.loads(plan)
    return result["Planning Time"], result["Execution Time"], result["Plan"]["Actual Rows"]


async def _round_trips(
    connection: asyncpg.Connection, sql: str, arguments: list[Any], runs: int = 200
) -> list[float]:
    """Milliseconds of each of ``runs`` executions (fewer past 30 s), prepared once as the app's
    statements are (so PostgreSQL may plan them once, generically, after the fifth)."""
    timings: list[float] = []
    deadline = time.perf_counter() + 30
    while len(timings) < runs and time.perf_counter() < deadline:
        started = time.perf_counter()
        await connection.fetch(sql, *arguments)
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


def _patient_id(n: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"bench-patient-{n}".encode(), usedforsecurity=False).hexdigest())


def _by_gin(patient_id: uuid.UUID, after: bool) -> Select[Any]:
    """The patientId filter of audit_event_page before audit_event_patients: `@>`, which a GIN
    index of patient_ids serves."""
    statement = select(*AuditEvent.__table__.c).where(
        AuditEvent.tenant_id == SCALE_TENANT, AuditEvent.patient_ids.contains([patient_id])
    )
    return paged(statement, AUDIT_ORDER, after, size_in_text=True)


async def _lookups(url: str, compare_gin: bool, runs: int) -> None:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        ways: dict[str, Callable[[uuid.UUID, bool], Select[Any]]] = {
            "audit_event_patients": lambda patient_id, after: page_statement(
                SCALE_TENANT, AuditEventFilter(patient_id=patient_id), after
            )
        }
        if compare_gin:
            print("lookups: building the GIN index on patient_ids ...", flush=True)
            await connection.execute(
                "DROP INDEX IF EXISTS bench_audit_events_patient_ids; "
                "CREATE INDEX bench_audit_events_patient_ids ON audit_events USING gin "
                "(patient_ids)"
            )
            await connection.execute("ANALYZE audit_events")
            ways["GIN on patient_ids"] = _by_gin
        try:
            for name, n in (("5,000 rows", HEAVY), ("20 rows", LIGHT)):
                patient_id = _patient_id(n)
                # The cursor of the last row of page 49 (or, for a patient with fewer rows,
                # of its last row: an empty page past them).
                deep = await connection.fetchrow(
                    "SELECT occurred_at, audit_event_id FROM audit_event_patients "
                    "WHERE tenant_id = $1 AND patient_id = $2 "
                    "ORDER BY occurred_at DESC, audit_event_id DESC "
                    "LIMIT 1 OFFSET least($3, (SELECT count(*) - 1 FROM audit_event_patients "
                    "WHERE tenant_id = $1 AND patient_id = $2))",
                    SCALE_TENANT,
                    patient_id,
                    49 * PAGE - 1,
                )
                pages = {
                    "first page": PageRequest(PAGE, None),
                    "page 50": PageRequest(PAGE, (deep[0], deep[1])),
                }
                for way, statement_of in ways.items():
                    for page_name, page in pages.items():
                        sql, arguments = _compiled(
                            statement_of(patient_id, page.after is not None), page
                        )
                        timings = [await _explain(connection, sql, arguments) for _ in range(runs)]
                        trips = await _round_trips(connection, sql, arguments)
                        print(
                            f"{name:>10}, {page_name:<10} via {way:<21}: "
                            f"{timings[0][2]:>2.0f} rows; EXPLAIN ANALYZE execution "
                            f"{timings[0][1]:6.2f} ms first, "
                            f"{statistics.median(t[1] for t in timings):6.2f} median, planning "
                            f"{statistics.median(t[0] for t in timings):5.2f}; prepared, "
                            f"{len(trips)} runs: p50 {trips[len(trips) // 2]:6.2f} ms, "
                            f"p99 {trips[len(trips) * 99 // 100]:6.2f}",
                            flush=True,
                        )
        finally:
            if compare_gin:
                await connection.execute("DROP INDEX bench_audit_events_patient_ids")
    finally:
        await connection.close()


def lookups(args: argparse.Namespace) -> None:
    with bench_database() as server:
        url = asyncio.run(_ensure_database(server, SCALE_DATABASE))
        migrations.upgrade(url)
        asyncio.run(_generate(url, args.rows))
        asyncio.run(_lookups(url, args.compare_gin, args.runs))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_scale")
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("writer", help="AuditWriter rows a second")
    write.add_argument("--appends", type=int, default=20_000)
    write.add_argument("--tasks", type=int, default=200)
    write.add_argument("--patients-per-row", type=int, nargs="+", default=[1, 20])
    write.add_argument("--repeat", type=int, default=3)
    write.set_defaults(run=writer)
    look = commands.add_parser("lookups", help="a patient's audit rows at 10 million rows")
    look.add_argument("--rows", type=int, default=10_000_000)
    look.add_argument("--compare-gin", action="store_true")
    look.add_argument("--runs", type=int, default=5)
    look.set_defaults(run=lookups)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
