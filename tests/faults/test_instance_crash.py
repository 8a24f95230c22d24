"""Three instances on one database, one of them killed with SIGKILL under load and started again.

Every write that was answered with data is whole in the database (the record, its status event,
its audit row); no write is there in part; a subscriber of the killed instance resumes on a
survivor with ``afterSequence`` and misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from contextlib import ExitStack
from typing import Any

import httpx
import websockets
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings
from models import AuditEvent, MedicalRecord, RecordStatusEvent
from models.enums import AuditOutcome
from tests.api_client import Api
from tests.factories import Factory
from tests.servers import server_environment, serving_process
from tests.subscriptions.conftest import Server, connect
from tests.subscriptions.helpers import (
    CREATE_RECORD,
    IDS,
    SUBSCRIPTION,
    latest_sequence,
    patient_gid,
)

WRITERS = 3
WRITES_PER_WRITER = 15


class Instances:
    """Three `medrec serve` processes; the second can be killed and started again."""

    def __init__(self, environment: dict[str, str], stack: ExitStack) -> None:
        self._environment = environment
        self._stack = stack
        started = [stack.enter_context(serving_process(environment)) for _ in range(3)]
        self.urls = [url for url, _ in started]
        self._victim = started[1][1]

    def kill_second(self) -> None:
        self._victim.kill()
        self._victim.wait()

    def restart_second(self) -> None:
        url, self._victim = self._stack.enter_context(serving_process(self._environment))
        self.urls[1] = url


async def _create(url: str, token: str, patient_id: str, n: int) -> str | None:
    """The new record's id when the instance answered with one; None when it did not answer."""
    new = {
        "patientId": patient_id,
        "recordType": "CONSULTATION",
        "visitDate": "2026-01-10T09:30:00+00:00",
        "chiefComplaint": f"crash test {n}",
    }
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            response = await client.post(
                "/graphql",
                json={"query": CREATE_RECORD, "variables": {"input": new}},
                headers={"Authorization": f"Bearer {token}"},
            )
    except httpx.TransportError:
        return None
    body = response.json()
    if body.get("data") is None or "errors" in body:
        return None
    record_id: str = body["data"]["createRecord"]["record"]["id"]
    return record_id


async def _stored_events(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str, after: str
) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(RecordStatusEvent)
            .where(
                RecordStatusEvent.tenant_id == tenant_id, RecordStatusEvent.sequence > int(after)
            )
        )
    return int(count or 0)


async def test_a_killed_instance_loses_no_answered_write_and_no_event(
    settings: Settings,
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await factory.provider(cognito_sub=f"dr-crash-{factory.tenant_id}")
    patient_id = patient_gid(await factory.patient())
    doctor = api.token(subject=f"dr-crash-{factory.tenant_id}", groups=("provider",))
    admin = api.token()
    after = await latest_sequence(sessionmaker, api.tenant_id)
    answered: list[str] = []
    delivered: list[dict[str, Any]] = []
    writes_done = asyncio.Event()

    with ExitStack() as stack:
        instances = Instances(server_environment(settings), stack)
        counter = itertools.count()

        async def writer() -> None:
            for _ in range(WRITES_PER_WRITER):
                n = next(counter)
                record_id = await _create(instances.urls[n % 3], doctor, patient_id, n)
                if record_id is not None:
                    answered.append(record_id)
                if n == WRITERS * WRITES_PER_WRITER // 3:
                    instances.kill_second()  # while the other writers' requests are in flight
                if n == 2 * WRITERS * WRITES_PER_WRITER // 3:
                    await asyncio.to_thread(instances.restart_second)

        async def subscriber() -> None:
            """Starts on the instance that will be killed; resumes on a survivor."""
            servers = itertools.chain([1], itertools.cycle([0, 2]))
            while not (
                writes_done.is_set()
                and len(delivered) >= await _stored_events(sessionmaker, api.tenant_id, after)
            ):
                server = Server.at(instances.urls[next(servers)])
                resume = delivered[-1]["sequence"] if delivered else after
                with contextlib.suppress(websockets.ConnectionClosed, OSError, TimeoutError):
                    async with connect(server, admin) as socket_:
                        assert (await socket_.next_message())["type"] == "connection_ack"
                        operation = await socket_.subscribe(SUBSCRIPTION, {"after": resume})
                        while True:
                            message = await socket_.next_message(wait=3.0)
                            assert (message["id"], message["type"]) == (operation, "next")
                            delivered.append(message["payload"]["data"]["recordStatusChanged"])

        listening = asyncio.create_task(subscriber())
        await asyncio.gather(*(writer() for _ in range(WRITERS)))
        writes_done.set()
        await asyncio.wait_for(listening, timeout=60)

    records, events, audited = await _stored_writes(sessionmaker, api.tenant_id)
    # Some requests went to the dead instance; the rest were answered, and each is whole.
    assert 0 < len(answered) < WRITERS * WRITES_PER_WRITER
    answered_ids = {_row_id(record_id) for record_id in answered}
    assert answered_ids <= records
    # Nothing in part: each record has its DRAFT event and its audit row, and nothing else is.
    assert events == records
    assert audited == records
    # Every event, once, in order, across the reconnection.
    sequences = [int(event["sequence"]) for event in delivered]
    assert sequences == sorted(set(sequences))
    assert len(sequences) == len(records)


def _row_id(global_id: str) -> uuid.UUID:
    return IDS.decode_id(global_id)[1]


async def _stored_writes(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> tuple[set[uuid.UUID], set[uuid.UUID], set[uuid.UUID]]:
    """The tenant's records; the records with a DRAFT creation event; the records named by an OK
    audit row of CreateRecord."""
    async with sessionmaker() as session:
        records = set(
            await session.scalars(
                select(MedicalRecord.id).where(MedicalRecord.tenant_id == tenant_id)
            )
        )
        events = set(
            await session.scalars(
                select(RecordStatusEvent.record_id).where(
                    RecordStatusEvent.tenant_id == tenant_id,
                    RecordStatusEvent.previous_status.is_(None),
                )
            )
        )
        audited = set(
            await session.scalars(
                select(func.unnest(AuditEvent.record_ids)).where(
                    AuditEvent.tenant_id == tenant_id,
                    AuditEvent.operation_type == "mutation",
                    AuditEvent.outcome == AuditOutcome.OK,
                )
            )
        )
    return records, events, audited
