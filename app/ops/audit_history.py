"""Synthetic audit history for load tests: audit rows naming a tenant's patients, spread over
the months before now, as years of use leave them (``medrec seed --audit-rows N``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

from app.data.audit_partitions import create_partitions, database_today, month_start
from app.ops.seed import synthetic_admin_subject

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

MONTHS = 36
# Rows a statement: the table's statement trigger indexes each statement's rows by patient.
CHUNK = 1_000_000

# Row i names the tenant's patient i modulo their number (in id order), one row in ten a
# change, one in fifty a download; times step evenly from :first to now. Written through
# audit_events, so its trigger fills audit_event_patients.
_ROWS = text(
    """
    INSERT INTO audit_events (occurred_at, tenant_id, subject, roles, operation_type,
                              query_sha256, patient_ids, outcome, action, client_address,
                              request_id)
    SELECT CAST(:first AS timestamptz) + (i - 1) * CAST(:step AS interval), :tenant_id,
           :subject, '{admin}',
           CASE WHEN i % 10 = 0 THEN 'mutation' ELSE 'query' END,
           md5(i::text) || md5(i::text), ARRAY[patients.ids[1 + i % patients.n]], 'ok',
           CAST(CASE WHEN i % 10 = 0 THEN 'CHANGED' WHEN i % 50 = 1 THEN 'DOWNLOADED_FILE'
                     ELSE 'VIEWED' END AS access_action),
           '10.0.0.1', 'seed-' || i
    FROM (SELECT array_agg(id ORDER BY id) AS ids, count(*) AS n FROM patients
          WHERE tenant_id = :tenant_id) AS patients,
         generate_series(CAST(:start AS bigint), CAST(:end AS bigint)) AS i
    WHERE patients.n > 0
    """
)


async def add_audit_history(connection: AsyncConnection, tenant_id: str, rows: int) -> int:
    """Appends ``rows`` audit rows for the tenant's patients over the last ``MONTHS`` months, in
    the partitions of their months; returns how many it appended (none without patients)."""
    today = await database_today(connection)
    for months_back in range(MONTHS, 0, -1):
        await create_partitions(connection, month_start(today, -months_back), 0)
    first = month_start(today, -MONTHS)
    now = await connection.scalar(text("SELECT now()"))
    assert now is not None
    step = (now - first) / max(rows, 1)
    appended = 0
    for start in range(1, rows + 1, CHUNK):
        result = await connection.execute(
            _ROWS,
            {
                "first": first,
                "step": step,
                "tenant_id": tenant_id,
                "subject": synthetic_admin_subject(tenant_id),
                "start": start,
                "end": min(rows, start + CHUNK - 1),
            },
        )
        appended += result.rowcount
    return appended
