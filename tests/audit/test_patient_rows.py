"""A patient's audit rows, found through audit_event_patients: exactly the rows of the tenant that
name the patient, newest first, page after page, across months (partitions)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from app.data.audit_partitions import month_start
from app.data.pagination import PageRequest
from app.data.repositories.audit_events import (
    AUDIT_ORDER,
    AuditEventFilter,
    audit_event_page,
    count_audit_events,
)
from tests.factories import admin_viewer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.data.database import FetchedRow

# Audit rows of explicit times; their audit_event_patients rows come from the table's trigger.
_INSERT = text(
    "INSERT INTO audit_events (occurred_at, tenant_id, operation_type, query_sha256, outcome, "
    "action, request_id, patient_ids) "
    "VALUES (:occurred_at, :tenant_id, 'query', 'sha', 'ok', 'VIEWED', :request_id, :patient_ids)"
)

PATIENT, OTHER, THIRD = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


@pytest.fixture
async def trail(engine: AsyncEngine, tenant_id: str) -> datetime:
    """Audit rows in this month and the next (two partitions); returns the start of the next
    month."""
    next_month = month_start(datetime.now(UTC), 1)
    this_month = next_month - timedelta(days=10)
    rows: list[tuple[str, datetime, list[uuid.UUID], str]] = [
        ("r1", this_month, [PATIENT], tenant_id),
        ("r2", this_month + timedelta(days=2), [OTHER, PATIENT], tenant_id),
        # The same instant as r2: the id decides, later first.
        ("r3", this_month + timedelta(days=2), [PATIENT], tenant_id),
        ("r4", next_month, [OTHER], tenant_id),
        ("r5", next_month + timedelta(hours=1), [PATIENT], tenant_id),
        ("r6", next_month + timedelta(days=1), [PATIENT], f"{tenant_id}-other"),
        ("r7", next_month + timedelta(days=2), [OTHER, PATIENT, THIRD], tenant_id),
    ]
    async with engine.begin() as connection:
        for request_id, occurred_at, patient_ids, tenant in rows:
            await connection.execute(
                _INSERT,
                {
                    "occurred_at": occurred_at,
                    "tenant_id": tenant,
                    "request_id": f"{tenant_id}-{request_id}",
                    "patient_ids": sorted(patient_ids),
                },
            )
    return next_month


def _names(rows: list[FetchedRow], tenant_id: str) -> list[str]:
    return [row.request_id.removeprefix(f"{tenant_id}-") for row in rows]


async def _every_page(engine: AsyncEngine, first: int, fetch: Any) -> list[list[FetchedRow]]:
    pages = []
    after = None
    async with engine.connect() as connection:
        while True:
            rows = await fetch(connection, PageRequest(first, after))
            pages.append(rows[:first])
            if len(rows) <= first:
                return pages
            after = AUDIT_ORDER.cursor_values(rows[first - 1])


@pytest.mark.parametrize("first", [1, 2, 3, 10])
async def test_a_patients_rows_newest_first_page_after_page(
    engine: AsyncEngine, tenant_id: str, trail: datetime, first: int
) -> None:
    pages = await _every_page(
        engine,
        first,
        lambda connection, page: audit_event_page(
            connection, admin_viewer(tenant_id), AuditEventFilter(patient_id=PATIENT), page
        ),
    )
    # first=2 ends a page at the month's end (r5 | r3); first=3 between the two rows of one instant.
    newest_first = ["r7", "r5", "r3", "r2", "r1"]
    assert [_names(page, tenant_id) for page in pages] == [
        newest_first[i : i + first] for i in range(0, len(newest_first), first)
    ]
    for page in pages:
        assert all(PATIENT in row.patient_ids and row.tenant_id == tenant_id for row in page)


async def test_the_audit_events_patient_filter_reads_the_same_rows(
    engine: AsyncEngine, tenant_id: str, trail: datetime
) -> None:
    admin = admin_viewer(tenant_id)
    for filter_, names in (
        (AuditEventFilter(patient_id=PATIENT), ["r7", "r5", "r3", "r2", "r1"]),
        (AuditEventFilter(patient_id=OTHER), ["r7", "r4", "r2"]),
        (AuditEventFilter(patient_id=PATIENT, occurred_after=trail), ["r7", "r5"]),
        (AuditEventFilter(patient_id=PATIENT, occurred_before=trail), ["r3", "r2", "r1"]),
        (AuditEventFilter(patient_id=uuid.uuid4()), []),
    ):
        pages = await _every_page(
            engine,
            2,
            lambda connection, page, f=filter_: audit_event_page(connection, admin, f, page),
        )
        assert [name for page in pages for name in _names(page, tenant_id)] == names
        async with engine.connect() as connection:
            assert await count_audit_events(connection, admin, filter_) == len(names)
