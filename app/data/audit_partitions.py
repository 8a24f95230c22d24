"""The audit trail's monthly partitions: made ahead of time, detached once past retention.

``audit_events`` and ``audit_event_patients`` are partitioned by month of ``occurred_at`` (UTC):
``<table>_YYYY_MM``. ``maintain_partitions`` makes this month's and the next ``MONTHS_AHEAD``
months' partitions before any row needs them (`medrec migrate`, server start,
`medrec audit-partitions`) and detaches those wholly older than the retention, renamed
``archived_<table>_YYYY_MM``: their rows stay in the database, outside the audit trail, until an
operator archives and drops them.

Each table also has a DEFAULT partition, so an audit row never fails for want of its month's
partition (a server running months past the last one made): the rows found there are moved, as
the whole table, into a partition of their months the next time partitions are made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, column, func, select, text
from sqlalchemy import table as table_clause

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

PARTITIONED_TABLES = ("audit_events", "audit_event_patients")
MONTHS_AHEAD = 3
ARCHIVE_PREFIX = "archived_"
# Partition DDL locks the whole table: better to give up (the default partition takes the rows
# meanwhile) than to queue every audit write behind a long reader.
LOCK_TIMEOUT = "5s"
# Serializes the maintenance of several servers starting at once.
_ADVISORY_LOCK_KEY = 0x6D65647265636175  # "medrecau"

_PARTITION_NAME = re.compile(
    rf"^(?:{ARCHIVE_PREFIX})?(?:{'|'.join(PARTITIONED_TABLES)})"
    r"_(?:default|\d{4}_\d{2}(?:_\d{4}_\d{2})?)$"
)
_RANGE = re.compile(r"^FOR VALUES FROM \((.+)\) TO \((.+)\)$")


class StrandedDefaultRows(Exception):
    """Rows of a DEFAULT partition that no one partition can take: an operator moves them."""


def is_partition_name(name: str) -> bool:
    """Whether ``name`` is a partition of an audit table, attached or archived (the migrations
    declare the partitioned tables only)."""
    return _PARTITION_NAME.match(name) is not None


@dataclass(frozen=True, slots=True)
class Partition:
    table: str
    name: str
    # [start, end) in UTC; both None for the DEFAULT partition, either None for MINVALUE/MAXVALUE.
    start: datetime | None
    end: datetime | None
    is_default: bool


@dataclass(slots=True)
class PartitionChanges:
    created: list[str] = field(default_factory=list)
    # (partition detached, the name it was archived under)
    detached: list[tuple[str, str]] = field(default_factory=list)


def month_start(day: date | datetime, months_later: int = 0) -> datetime:
    months = day.year * 12 + day.month - 1 + months_later
    return datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)


def _literal(instant: datetime) -> str:
    return f"'{instant.astimezone(UTC).isoformat(sep=' ')}'"


def _range_name(table: str, start: datetime, end: datetime) -> str:
    name = f"{table}_{start:%Y_%m}"
    last = month_start(end, -1)
    return name if last == start else f"{name}_{last:%Y_%m}"


async def _partitions(connection: AsyncConnection) -> list[Partition]:
    """The attached partitions of both tables (after ``_begin_maintenance``: bounds are written
    out in the session's time zone)."""
    rows = await connection.execute(
        text(
            "SELECT parent.relname, child.relname, pg_get_expr(child.relpartbound, child.oid) "
            "FROM pg_inherits "
            "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "WHERE parent.oid = ANY(ARRAY[to_regclass('audit_events'), "
            "to_regclass('audit_event_patients')]) ORDER BY child.relname"
        )
    )
    found = []
    for table, name, bound in rows.all():
        if bound == "DEFAULT":
            found.append(Partition(table, name, None, None, is_default=True))
            continue
        matched = _RANGE.match(bound)
        if matched is None:
            raise RuntimeError(f"{name}: unexpected partition bound")
        start, end = (_bound(value) for value in matched.groups())
        found.append(Partition(table, name, start, end, is_default=False))
    return found


def _bound(value: str) -> datetime | None:
    if value in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(value.strip("'"))


async def _begin_maintenance(connection: AsyncConnection) -> None:
    # UTC: partition bounds are written out, and read back, in the session's time zone.
    await connection.execute(text("SET LOCAL TimeZone = 'UTC'"))
    await connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    await connection.execute(
        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
    )


async def _append_only(connection: AsyncConnection, name: str) -> None:
    # As the migration does for each partition: statement triggers are not inherited.
    await connection.execute(
        text(
            f"CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {name} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )
    )


def _overlaps(partition: Partition, start: datetime, end: datetime) -> bool:
    if partition.is_default:
        return False
    return (partition.start is None or partition.start < end) and (
        partition.end is None or start < partition.end
    )


async def _adopt_default_rows(
    connection: AsyncConnection, table: str, existing: list[Partition]
) -> str | None:
    """Moves the rows of ``table``'s DEFAULT partition into a partition of their months: the
    default partition itself becomes it (no row is copied or deleted), and a new, empty one
    takes its place. Returns the new partition's name, if there were rows."""
    default = f"{table}_default"
    occurred_at = column("occurred_at", DateTime(timezone=True))
    rows = table_clause(default, occurred_at)
    # Looked at without a lock first: it is empty at nearly every start, and detaching takes the
    # whole table's.
    if (await connection.execute(select(occurred_at).select_from(rows).limit(1))).first() is None:
        return None
    await connection.execute(text(f"ALTER TABLE {table} DETACH PARTITION {default}"))
    # Detached, it takes no more rows: the span read now is the span attached below.
    first, last = (
        await connection.execute(
            select(func.min(occurred_at), func.max(occurred_at)).select_from(rows)
        )
    ).one()
    start, end = month_start(first), month_start(last, 1)
    if any(p.table == table and _overlaps(p, start, end) for p in existing):
        raise StrandedDefaultRows(
            f"{default} holds rows from {first:%Y-%m} to {last:%Y-%m}, on both sides of "
            "months that have partitions: move them into partitions by hand"
        )
    name = _range_name(table, start, end)
    await connection.execute(text(f"ALTER TABLE {default} RENAME TO {name}"))
    await connection.execute(text(f"CREATE TABLE {default} PARTITION OF {table} DEFAULT"))
    await _append_only(connection, default)
    await connection.execute(
        text(
            f"ALTER TABLE {table} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ({_literal(start)}) TO ({_literal(end)})"
        )
    )
    return name


async def create_partitions(
    connection: AsyncConnection, today: date, months_ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Makes the partitions of ``today``'s month and the ``months_ahead`` after it that neither
    table has yet, after moving any rows of the DEFAULT partitions into partitions of their own.
    Returns the names of the partitions made."""
    await _begin_maintenance(connection)
    created = []
    for table in PARTITIONED_TABLES:
        adopted = await _adopt_default_rows(connection, table, await _partitions(connection))
        if adopted is not None:
            created.append(adopted)
    existing = await _partitions(connection)
    for months_later in range(months_ahead + 1):
        start, end = month_start(today, months_later), month_start(today, months_later + 1)
        for table in PARTITIONED_TABLES:
            if any(p.table == table and _overlaps(p, start, end) for p in existing):
                continue
            name = _range_name(table, start, end)
            await connection.execute(
                text(
                    f"CREATE TABLE {name} PARTITION OF {table} "
                    f"FOR VALUES FROM ({_literal(start)}) TO ({_literal(end)})"
                )
            )
            await _append_only(connection, name)
            created.append(name)
    return created


async def detach_expired_partitions(
    connection: AsyncConnection, today: date, retention_months: int
) -> list[tuple[str, str]]:
    """Detaches the partitions whose every row is more than ``retention_months`` older than
    ``today``'s month, renamed ``archived_<name>``. Returns (name, archived name) pairs."""
    await _begin_maintenance(connection)
    cutoff = month_start(today, -retention_months)
    detached = []
    found = await _partitions(connection)
    for partition in (p for table in PARTITIONED_TABLES for p in found if p.table == table):
        if partition.is_default or partition.end is None or partition.end > cutoff:
            continue
        archived = f"{ARCHIVE_PREFIX}{partition.name}"
        await connection.execute(
            text(f"ALTER TABLE {partition.table} DETACH PARTITION {partition.name}")
        )
        await connection.execute(text(f"ALTER TABLE {partition.name} RENAME TO {archived}"))
        detached.append((partition.name, archived))
    return detached


async def database_today(connection: AsyncConnection) -> date:
    """The database's date in UTC: its clock is the one that stamps ``occurred_at``."""
    today: date = (
        await connection.execute(text("SELECT (now() AT TIME ZONE 'UTC')::date"))
    ).scalar_one()
    return today


async def maintain_partitions(
    engine: AsyncEngine, *, retention_months: int | None, today: date | None = None
) -> PartitionChanges:
    """In one transaction: the partitions due ahead are made and, given ``retention_months``,
    the expired ones detached."""
    changes = PartitionChanges()
    async with engine.begin() as connection:
        today = today or await database_today(connection)
        changes.created = await create_partitions(connection, today)
        if retention_months is not None:
            changes.detached = await detach_expired_partitions(connection, today, retention_months)
    return changes
