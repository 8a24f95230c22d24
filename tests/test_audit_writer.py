"""The audit writer: rows due together share one INSERT round trip and one commit; a row the
database refuses fails only its own operation; every row is found by the patients it names."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from sqlalchemy import select, text

from app.data.audit_writer import AuditWriter, append
from app.data.pagination import PageRequest
from app.data.repositories.audit_events import AuditEventFilter, audit_event_page
from app.domain.audit import AuditTrail
from models import AuditEvent
from models.enums import AuditOutcome
from tests.api_client import count_statements
from tests.factories import admin_viewer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


def _event(
    tenant_id: str, request_id: str | None = None, patient_id: uuid.UUID | None = None
) -> dict[str, Any]:
    trail = AuditTrail(
        request_id=request_id or uuid.uuid4().hex,
        client_address="10.0.0.1",
        viewer=admin_viewer(tenant_id),
    )
    trail.describe_operation("Read", "query", "{ patients { edges { node { id } } } }")
    trail.touch_tree([patient_id or uuid.uuid4()], [])
    return trail.event(AuditOutcome.OK)


async def _stored(engine: AsyncEngine, tenant_id: str) -> set[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(AuditEvent.request_id).where(AuditEvent.tenant_id == tenant_id)
        )
        return set(rows.scalars())


def _inserts(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("INSERT INTO audit_events")]


async def test_rows_handed_over_together_share_one_insert(
    engine: AsyncEngine, tenant_id: str
) -> None:
    writer = AuditWriter(engine)
    events = [_event(tenant_id) for _ in range(5)]
    async with count_statements(engine) as log:
        await asyncio.gather(*(writer.append(event) for event in events))
    assert len(_inserts(log.statements)) == 1
    assert await _stored(engine, tenant_id) == {event["request_id"] for event in events}


async def test_rows_due_while_a_flush_runs_go_in_the_next_one(
    engine: AsyncEngine, tenant_id: str
) -> None:
    writer = AuditWriter(engine)
    first, *later = (_event(tenant_id) for _ in range(4))
    async with engine.connect() as blocker, count_statements(engine) as log:
        # Holds the first flush's INSERT until the later rows are handed over.
        await blocker.execute(text("LOCK TABLE audit_events IN EXCLUSIVE MODE"))
        appended = [asyncio.create_task(writer.append(first))]
        for _ in range(200):
            waiting = await blocker.scalar(
                text(
                    "SELECT count(*) FROM pg_locks"
                    " WHERE relation = 'audit_events'::regclass AND NOT granted"
                )
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the first flush never reached the table")
        appended += [asyncio.create_task(writer.append(event)) for event in later]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in appended)  # nothing answered before its commit
        await blocker.rollback()
        await asyncio.gather(*appended)
    assert len(_inserts(log.statements)) == 2
    assert await _stored(engine, tenant_id) == {e["request_id"] for e in [first, *later]}


async def _found_by_patient(
    engine: AsyncEngine, tenant_id: str, patient_id: uuid.UUID
) -> list[str]:
    async with engine.connect() as connection:
        rows = await audit_event_page(
            connection,
            admin_viewer(tenant_id),
            AuditEventFilter(patient_id=patient_id),
            PageRequest(10, None),
        )
    return [row.request_id for row in rows]


async def test_a_row_of_either_path_is_found_by_its_patients(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> None:
    patient_id = uuid.uuid4()
    grouped = _event(tenant_id, patient_id=patient_id)
    await AuditWriter(engine).append(grouped)
    # A mutation's row, in the mutation's transaction.
    in_transaction = _event(tenant_id, patient_id=patient_id)
    async with sessionmaker() as session, session.begin():
        await append(session, in_transaction)

    assert await _found_by_patient(engine, tenant_id, patient_id) == [
        in_transaction["request_id"],
        grouped["request_id"],
    ]


async def test_a_flush_stores_what_an_insert_of_each_row_stores(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> None:
    events = [_event(tenant_id) for _ in range(4)]
    events[0].update(subject='quote " and back\\slash', operation_name="Ünïcode {a,b}")
    events[1].update(roles=["admin", "provider"], patient_ids=[], record_ids=[uuid.uuid4()])
    events[2].update(subject=None, operation_name=None, client_address=None)
    events[3].update(
        patient_ids=sorted(uuid.uuid4() for _ in range(20)), outcome=AuditOutcome.DENIED
    )
    await asyncio.gather(*(AuditWriter(engine).append(event) for event in events))
    async with sessionmaker() as session, session.begin():
        for event in events:
            await append(session, {**event, "request_id": f"{event['request_id']}-inserted"})

    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(AuditEvent.__table__).where(AuditEvent.tenant_id == tenant_id)
            )
        ).mappings()
        stored = {row["request_id"]: row for row in rows}
    for event in events:
        flushed, inserted = stored[event["request_id"]], stored[f"{event['request_id']}-inserted"]
        for key, value in event.items():
            # `since` is no column: the grant it finds is (none here).
            if key not in ("request_id", "since"):
                assert flushed[key] == inserted[key] == value, key


async def test_a_value_too_long_is_refused_not_cut_short(
    engine: AsyncEngine, tenant_id: str
) -> None:
    writer = AuditWriter(engine)
    too_long = {**_event(tenant_id), "client_address": "x" * 65}
    fine = _event(tenant_id)
    outcomes = await asyncio.gather(
        writer.append(too_long), writer.append(fine), return_exceptions=True
    )
    assert isinstance(outcomes[0], asyncpg.StringDataRightTruncationError)
    assert outcomes[1] is None
    assert await _stored(engine, tenant_id) == {fine["request_id"]}


async def test_a_refused_row_fails_alone(
    engine: AsyncEngine, tenant_id: str, failing_request_id: str
) -> None:
    writer = AuditWriter(engine)
    refused = _event(tenant_id, failing_request_id)
    fine = [_event(tenant_id) for _ in range(3)]
    outcomes = await asyncio.gather(
        *(writer.append(event) for event in [fine[0], refused, *fine[1:]]),
        return_exceptions=True,
    )
    assert outcomes[0] is None
    assert outcomes[2:] == [None, None]
    assert isinstance(outcomes[1], asyncpg.RaiseError)
    assert await _stored(engine, tenant_id) == {event["request_id"] for event in fine}
    # What the refused row would have named is not found either; the others' patients are.
    assert await _found_by_patient(engine, tenant_id, refused["patient_ids"][0]) == []
    for event in fine:
        assert await _found_by_patient(engine, tenant_id, event["patient_ids"][0]) == [
            event["request_id"]
        ]
