"""What the subscription tests share: GraphQL over HTTP to the server processes, and the database's
view of a tenant's event stream (the truth the delivered events are compared with)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, select, text

from app.domain.opaque_ids import NodeType, OpaqueIds
from models import MedicalRecord, RecordStatusEvent

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

    from tests.subscriptions.conftest import Server, Subscriber

IDS = OpaqueIds("medrec-opaque-id-v1")

SUBSCRIPTION = """subscription($recordId: ID, $patientId: ID, $after: String) {
  recordStatusChanged(recordId: $recordId, patientId: $patientId, afterSequence: $after) {
    sequence previousStatus status changedBy reason
    record { id status patient { mrn } diagnoses { icd10Code } } } }"""

CHANGE = """mutation($input: ChangeRecordStatusInput!) {
  changeRecordStatus(input: $input) { record { id status version } } }"""

CREATE_RECORD = """mutation($input: CreateRecordInput!) {
  createRecord(input: $input) { record { id status version } } }"""

ADD_DIAGNOSIS = """mutation($input: AddDiagnosisInput!) {
  addDiagnosis(input: $input) { diagnosis { id } } }"""


def record_gid(record: dict[str, Any]) -> str:
    return IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"])


def patient_gid(patient: dict[str, Any]) -> str:
    return IDS.encode_id(NodeType.PATIENT, patient["id"])


async def graphql(
    server: Server,
    token: str,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON body of one POST to ``server``."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        )
    body: dict[str, Any] = response.json()
    return body


async def change_status(
    server: Server,
    token: str,
    record_id: str,
    status: str,
    version: int,
    reason: str | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The raw body of a ``changeRecordStatus``."""
    change: dict[str, Any] = {"id": record_id, "status": status, "expectedVersion": version}
    if reason is not None:
        change["reason"] = reason
    return await graphql(server, token, CHANGE, {"input": change}, headers=headers)


async def changed(
    server: Server,
    token: str,
    record_id: str,
    status: str,
    version: int,
    reason: str | None = None,
) -> dict[str, Any]:
    """A ``changeRecordStatus`` that must succeed; the record it returns."""
    body = await change_status(server, token, record_id, status, version, reason)
    assert "errors" not in body, body
    record: dict[str, Any] = body["data"]["changeRecordStatus"]["record"]
    return record


async def created_record(
    server: Server, token: str, patient_id: str, provider_id: str | None = None
) -> dict[str, Any]:
    """A ``createRecord`` that must succeed; the new record (a DRAFT)."""
    new: dict[str, Any] = {
        "patientId": patient_id,
        "recordType": "CONSULTATION",
        "visitDate": "2026-01-10T09:30:00+00:00",
        "chiefComplaint": "cough",
    }
    if provider_id is not None:
        new["providerId"] = provider_id
    body = await graphql(server, token, CREATE_RECORD, {"input": new})
    assert "errors" not in body, body
    record: dict[str, Any] = body["data"]["createRecord"]["record"]
    return record


async def next_event(
    subscriber: Subscriber,
    operation: str,
    wait: float = 10.0,
    field: str = "recordStatusChanged",
) -> dict[str, Any]:
    """The next message, which must be an event of ``operation``: its subscription ``field``."""
    message = await subscriber.next_message(wait=wait)
    assert message.get("id") == operation, message
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    event: dict[str, Any] = message["payload"]["data"][field]
    return event


@dataclass(frozen=True)
class StoredEvent:
    sequence: int
    record_id: uuid.UUID
    previous_status: str | None
    status: str


async def latest_sequence(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str) -> str:
    """The tenant's newest sequence ("0" when it has none): subscribing after it misses nothing.

    Tests subscribe with this as ``afterSequence`` so a change they make right after subscribing
    is delivered however the server interleaves the two (no sleeping until the server listens).
    """
    async with sessionmaker() as session:
        latest = await session.scalar(
            select(func.max(RecordStatusEvent.sequence)).where(
                RecordStatusEvent.tenant_id == tenant_id
            )
        )
    return str(latest or 0)


async def stored_events(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> list[StoredEvent]:
    """The tenant's whole event stream, in sequence order."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(
                    RecordStatusEvent.sequence,
                    RecordStatusEvent.record_id,
                    RecordStatusEvent.previous_status,
                    RecordStatusEvent.status,
                )
                .where(RecordStatusEvent.tenant_id == tenant_id)
                .order_by(RecordStatusEvent.sequence)
            )
        ).all()
    return [
        StoredEvent(
            sequence=row.sequence,
            record_id=row.record_id,
            previous_status=None if row.previous_status is None else row.previous_status.value,
            status=row.status.value,
        )
        for row in rows
    ]


async def stored_record(
    sessionmaker: async_sessionmaker[AsyncSession], record_id: uuid.UUID
) -> tuple[str, int]:
    """A record's status and version as the database holds them."""
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(MedicalRecord.status, MedicalRecord.version).where(
                    MedicalRecord.id == record_id
                )
            )
        ).one()
    return row.status.value, int(row.version)


async def wait_until_blocked_by(holder: AsyncConnection, count: int = 1) -> None:
    """Waits (10 s at most) until ``count`` requests are queued on locks ``holder`` holds."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # pg_stat_activity is a snapshot held for the rest of a transaction; drop it.
        await holder.execute(text("SELECT pg_stat_clear_snapshot()"))
        # Blocked by this very connection, not by whatever else the database is doing.
        waiting = await holder.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("fewer requests than expected queued on the held rows")
