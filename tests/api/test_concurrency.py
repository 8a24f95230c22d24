"""Writers racing on one row: the same expectedVersion lets exactly one of them through.

The requests really overlap: ``asyncio.gather`` sends them through the ASGI client to the same
app, whose requests each hold their own pooled PostgreSQL connection; the row lock taken under the
version check makes the second writer wait for the first and then see the new version.

So that the overlap does not depend on scheduling luck, most tests first lock the row themselves
in PostgreSQL, start every writer, wait until PostgreSQL reports all of them blocked on that lock,
and only then let go: the writers then really do contend for the same row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.domain.opaque_ids import NodeType, OpaqueIds
from models import AuditEvent, Diagnosis, MedicalRecord, Patient, RecordStatusEvent
from models.enums import AuditOutcome, RecordStatus
from tests.api_client import Api, error_codes
from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")

CHANGE_STATUS = """mutation Race($input: ChangeRecordStatusInput!) {
  changeRecordStatus(input: $input) { record { status version } } }"""
UPDATE_RECORD = """mutation Race($input: UpdateRecordInput!) {
  updateRecord(input: $input) { record { notes version } } }"""
UPDATE_PATIENT = """mutation Race($input: UpdatePatientInput!) {
  updatePatient(input: $input) { patient { givenName version } } }"""


@pytest.fixture
def hold_row(engine: AsyncEngine) -> Callable[[Any, uuid.UUID], AbstractAsyncContextManager[Held]]:
    """Locks one row from outside the app, as a competing transaction would."""

    @asynccontextmanager
    async def hold(model: Any, row_id: uuid.UUID) -> AsyncIterator[Held]:
        held = Held()
        async with engine.connect() as connection:
            transaction = await connection.begin()
            await connection.execute(select(model.id).where(model.id == row_id).with_for_update())
            held.connection = connection
            yield held
            await transaction.commit()

    return hold


@dataclass
class Held:
    connection: Any = None

    async def wait_for_waiters(self, count: int) -> int:
        """Waits (10 s at most) until ``count`` other sessions are blocked on a lock."""
        deadline = asyncio.get_running_loop().time() + 10.0
        waiting = 0
        while asyncio.get_running_loop().time() < deadline:
            # pg_stat_activity is a snapshot held for the rest of a transaction; drop it.
            await self.connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            waiting = (
                await self.connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
            if waiting >= count:
                break
            await asyncio.sleep(0.02)
        return int(waiting)


async def _locked_race(
    hold: Callable[[Any, uuid.UUID], AbstractAsyncContextManager[Held]],
    model: Any,
    row_id: uuid.UUID,
    api: Api,
    query: str,
    variables: list[dict[str, Any]],
    request_ids: list[str],
) -> tuple[list[dict[str, Any]], int]:
    """Runs the race while the row is held; returns the bodies and how many writers queued."""
    async with hold(model, row_id) as held:
        race = asyncio.create_task(_race(api, query, variables, request_ids))
        queued = await held.wait_for_waiters(len(variables))
    return await race, queued


async def _race(
    api: Api, query: str, variables: list[dict[str, Any]], request_ids: list[str]
) -> list[dict[str, Any]]:
    token = api.token()
    responses: list[httpx.Response] = await asyncio.gather(
        *(
            api.post(query, each, token=token, headers={"X-Request-ID": request_id})
            for each, request_id in zip(variables, request_ids, strict=True)
        )
    )
    for response in responses:
        assert response.status_code == 200, response.text
    return [response.json() for response in responses]


def _split(bodies: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Indexes of the winners and of the CONFLICT losers; anything else fails the test."""
    winners = [i for i, body in enumerate(bodies) if "errors" not in body]
    losers = [i for i, body in enumerate(bodies) if error_codes(body) == ["CONFLICT"]]
    assert len(winners) + len(losers) == len(bodies), bodies
    for index in losers:
        message = bodies[index]["errors"][0]["message"]
        assert "input.expectedVersion" in message
        assert "version 2" in message
        assert bodies[index]["data"] is None
    return winners, losers


async def _record(sessionmaker: async_sessionmaker[AsyncSession], row_id: uuid.UUID) -> Any:
    async with sessionmaker() as session:
        return (
            await session.execute(
                select(*MedicalRecord.__table__.c).where(MedicalRecord.id == row_id)
            )
        ).one()


async def _events(sessionmaker: async_sessionmaker[AsyncSession], row_id: uuid.UUID) -> list[Any]:
    async with sessionmaker() as session:
        return list(
            (
                await session.execute(
                    select(*RecordStatusEvent.__table__.c).where(
                        RecordStatusEvent.record_id == row_id
                    )
                )
            ).all()
        )


async def _outcomes(
    sessionmaker: async_sessionmaker[AsyncSession], request_ids: list[str]
) -> dict[str, list[AuditOutcome]]:
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(AuditEvent.request_id, AuditEvent.outcome).where(
                    AuditEvent.request_id.in_(request_ids)
                )
            )
        ).all()
    found: dict[str, list[AuditOutcome]] = {request_id: [] for request_id in request_ids}
    for row in rows:
        found[row.request_id].append(row.outcome)
    return found


def _request_ids(count: int) -> list[str]:
    run = uuid.uuid4().hex[:12]
    return [f"race-{run}-{i}" for i in range(count)]


async def _check_audit(
    sessionmaker: async_sessionmaker[AsyncSession],
    request_ids: list[str],
    winners: list[int],
) -> None:
    outcomes = await _outcomes(sessionmaker, request_ids)
    for index, request_id in enumerate(request_ids):
        expected = AuditOutcome.OK if index in winners else AuditOutcome.ERROR
        assert outcomes[request_id] == [expected], (request_id, outcomes)


async def test_concurrent_status_changes_one_wins(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    hold_row: Callable[[Any, uuid.UUID], AbstractAsyncContextManager[Held]],
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.FINALIZED)
    rid = IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"])
    reasons = ["amendment by the first writer", "amendment by the second writer"]
    variables = [
        {"input": {"id": rid, "status": "AMENDED", "expectedVersion": 1, "reason": reason}}
        for reason in reasons
    ]
    request_ids = _request_ids(2)

    bodies, queued = await _locked_race(
        hold_row, MedicalRecord, record["id"], api, CHANGE_STATUS, variables, request_ids
    )

    winners, losers = _split(bodies)
    assert queued == len(bodies)
    assert (len(winners), len(losers)) == (1, 1)
    assert bodies[winners[0]]["data"]["changeRecordStatus"]["record"] == {
        "status": "AMENDED",
        "version": 2,
    }
    stored = await _record(sessionmaker, record["id"])
    assert (stored.status, stored.version) == (RecordStatus.AMENDED, 2)
    events = await _events(sessionmaker, record["id"])
    assert [(e.previous_status, e.status, e.reason) for e in events] == [
        (RecordStatus.FINALIZED, RecordStatus.AMENDED, reasons[winners[0]])
    ]
    await _check_audit(sessionmaker, request_ids, winners)


async def test_concurrent_record_updates_one_wins(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    hold_row: Callable[[Any, uuid.UUID], AbstractAsyncContextManager[Held]],
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    rid = IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"])
    notes = ["notes from the first writer", "notes from the second writer"]
    variables = [{"input": {"id": rid, "expectedVersion": 1, "notes": text}} for text in notes]
    request_ids = _request_ids(2)

    bodies, queued = await _locked_race(
        hold_row, MedicalRecord, record["id"], api, UPDATE_RECORD, variables, request_ids
    )

    winners, losers = _split(bodies)
    assert queued == len(bodies)
    assert (len(winners), len(losers)) == (1, 1)
    winner = winners[0]
    assert bodies[winner]["data"]["updateRecord"]["record"] == {
        "notes": notes[winner],
        "version": 2,
    }
    stored = await _record(sessionmaker, record["id"])
    assert (stored.notes, stored.version, stored.status) == (notes[winner], 2, RecordStatus.DRAFT)
    assert await _events(sessionmaker, record["id"]) == []
    await _check_audit(sessionmaker, request_ids, winners)


async def test_concurrent_patient_updates_one_wins(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    hold_row: Callable[[Any, uuid.UUID], AbstractAsyncContextManager[Held]],
) -> None:
    patient = await factory.patient()
    pid = IDS.encode_id(NodeType.PATIENT, patient["id"])
    names = ["Firstwriter", "Secondwriter"]
    variables = [{"input": {"id": pid, "expectedVersion": 1, "givenName": name}} for name in names]
    request_ids = _request_ids(2)

    bodies, queued = await _locked_race(
        hold_row, Patient, patient["id"], api, UPDATE_PATIENT, variables, request_ids
    )

    winners, losers = _split(bodies)
    assert queued == len(bodies)
    assert (len(winners), len(losers)) == (1, 1)
    winner = winners[0]
    assert bodies[winner]["data"]["updatePatient"]["patient"] == {
        "givenName": names[winner],
        "version": 2,
    }
    async with sessionmaker() as session:
        stored = (
            await session.execute(
                select(Patient.given_name, Patient.version).where(Patient.id == patient["id"])
            )
        ).one()
    assert (stored.given_name, stored.version) == (names[winner], 2)
    await _check_audit(sessionmaker, request_ids, winners)


@pytest.mark.parametrize("mutation", ["changeRecordStatus", "updateRecord"])
async def test_eight_concurrent_writers_one_winner(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    hold_row: Callable[[Any, uuid.UUID], AbstractAsyncContextManager[Held]],
    mutation: str,
) -> None:
    writers = 8
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(record)
    rid = IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"])
    if mutation == "changeRecordStatus":
        query = CHANGE_STATUS
        variables = [
            {"input": {"id": rid, "status": "FINALIZED", "expectedVersion": 1, "reason": f"w{i}"}}
            for i in range(writers)
        ]
    else:
        query = UPDATE_RECORD
        variables = [
            {"input": {"id": rid, "expectedVersion": 1, "notes": f"writer {i}"}}
            for i in range(writers)
        ]
    request_ids = _request_ids(writers)

    bodies, queued = await _locked_race(
        hold_row, MedicalRecord, record["id"], api, query, variables, request_ids
    )

    winners, losers = _split(bodies)
    assert queued == len(bodies)
    assert len(winners) == 1
    assert len(losers) == writers - 1
    winner = winners[0]
    stored = await _record(sessionmaker, record["id"])
    assert stored.version == 2
    events = await _events(sessionmaker, record["id"])
    if mutation == "changeRecordStatus":
        assert stored.status is RecordStatus.FINALIZED
        assert stored.finalized_at is not None
        assert [(e.status, e.reason) for e in events] == [(RecordStatus.FINALIZED, f"w{winner}")]
    else:
        assert stored.status is RecordStatus.DRAFT
        assert stored.notes == f"writer {winner}"
        assert events == []
    await _check_audit(sessionmaker, request_ids, winners)


async def test_concurrent_writers_without_a_widened_window(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The same race left to the scheduler alone still has exactly one winner."""
    writers = 8
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.FINALIZED)
    rid = IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"])
    variables = [
        {"input": {"id": rid, "status": "AMENDED", "expectedVersion": 1, "reason": f"w{i}"}}
        for i in range(writers)
    ]
    request_ids = _request_ids(writers)

    bodies = await _race(api, CHANGE_STATUS, variables, request_ids)

    winners, losers = _split(bodies)
    assert (len(winners), len(losers)) == (1, writers - 1)
    stored = await _record(sessionmaker, record["id"])
    assert (stored.status, stored.version) == (RecordStatus.AMENDED, 2)
    assert len(await _events(sessionmaker, record["id"])) == 1
    await _check_audit(sessionmaker, request_ids, winners)


ADD_DIAGNOSIS = """mutation Race($input: AddDiagnosisInput!) {
  addDiagnosis(input: $input) { diagnosis { id record { version } } } }"""
REMOVE_DIAGNOSIS = """mutation Race($id: ID!) { removeDiagnosis(id: $id) { record { version } } }"""


async def test_concurrent_primary_diagnoses_one_wins(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    hold_row: Callable[[Any, uuid.UUID], AbstractAsyncContextManager[Held]],
) -> None:
    """addDiagnosis takes no expectedVersion: the record lock alone keeps one PRIMARY."""
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    rid = IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"])
    variables = [
        {"input": {"recordId": rid, "icd10Code": code, "description": "d", "type": "PRIMARY"}}
        for code in ("E11.9", "I10")
    ]

    bodies, queued = await _locked_race(
        hold_row, MedicalRecord, record["id"], api, ADD_DIAGNOSIS, variables, _request_ids(2)
    )

    assert queued == 2
    assert sorted(map(str, map(error_codes, bodies))) == ["['BAD_USER_INPUT']", "[]"], bodies
    async with sessionmaker() as session:
        primaries = (
            await session.scalars(select(Diagnosis.id).where(Diagnosis.record_id == record["id"]))
        ).all()
    assert len(primaries) == 1
    assert (await _record(sessionmaker, record["id"])).version == 2


async def test_concurrent_removals_of_one_diagnosis_one_wins(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    hold_row: Callable[[Any, uuid.UUID], AbstractAsyncContextManager[Held]],
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    diagnosis = await factory.diagnosis(record)
    did = IDS.encode_id(NodeType.DIAGNOSIS, diagnosis["id"])

    bodies, queued = await _locked_race(
        hold_row,
        MedicalRecord,
        record["id"],
        api,
        REMOVE_DIAGNOSIS,
        [{"id": did}, {"id": did}],
        _request_ids(2),
    )

    assert queued == 2
    assert sorted(map(str, map(error_codes, bodies))) == ["['NOT_FOUND']", "[]"], bodies
    stored = await _record(sessionmaker, record["id"])
    assert stored.version == 2


async def test_a_status_event_draws_its_sequence_under_the_tenants_writer_lock(
    api: Api, factory: Factory, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """While another transaction holds the tenant's writer lock, a status change waits before
    its event takes a sequence number: numbers become visible in the order they were drawn."""
    provider = await factory.provider()
    record = await factory.record(await factory.patient(), provider, status=RecordStatus.FINALIZED)
    rid = IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"])
    amend = {"input": {"id": rid, "status": "AMENDED", "expectedVersion": 1, "reason": "late"}}
    # The sequence's last number drawn, by anyone: nextval is not transactional.
    drawn = text(
        "SELECT coalesce(last_value, 0) FROM pg_sequences WHERE schemaname || '.' || sequencename"
        " = pg_get_serial_sequence('record_status_events', 'sequence')"
    )
    async with engine.connect() as holder:
        transaction = await holder.begin()
        await holder.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"status:{api.tenant_id}"},
        )
        before = await holder.scalar(drawn)
        assert before is not None
        change = asyncio.create_task(api.query(CHANGE_STATUS, amend))
        held = Held(holder)
        assert await held.wait_for_waiters(1) == 1
        assert await holder.scalar(drawn) == before
        assert await _events(sessionmaker, record["id"]) == []
        await transaction.commit()
    body = await change
    assert body["data"]["changeRecordStatus"]["record"] == {"status": "AMENDED", "version": 2}
    events = await _events(sessionmaker, record["id"])
    assert len(events) == 1
    assert events[0].sequence > before
