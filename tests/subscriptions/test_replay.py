"""``afterSequence``: a subscriber that reconnects with the last sequence it saw misses nothing."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

import pytest

from models.enums import RecordStatus
from tests.subscriptions.conftest import Server, connect
from tests.subscriptions.helpers import (
    ADD_DIAGNOSIS,
    SUBSCRIPTION,
    changed,
    created_record,
    graphql,
    next_event,
    patient_gid,
    record_gid,
    stored_events,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory

RECORDS = 4
CHANGES_PER_RECORD = 15  # FINALIZED, then AMENDED 14 times: 60 events in all


async def _change_many(
    servers: list[Server], token: str, record_ids: list[str], rng: random.Random
) -> None:
    """Each record's changes in order, the records' chains concurrently, through both processes."""

    async def chain(record_id: str, picks: list[int]) -> None:
        version = 1
        for step, pick in enumerate(picks):
            status, reason = ("FINALIZED", None) if step == 0 else ("AMENDED", f"addendum {step}")
            record = await changed(servers[pick], token, record_id, status, version, reason)
            version = record["version"]

    await asyncio.gather(
        *(
            chain(record_id, [rng.randrange(2) for _ in range(CHANGES_PER_RECORD)])
            for record_id in record_ids
        )
    )


async def test_resubscribing_after_disconnects_loses_nothing(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    rng = random.Random(20261123)
    provider = await factory.provider()
    patient = await factory.patient()
    record_ids = []
    for _ in range(RECORDS):
        record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
        await factory.diagnosis(record)
        record_ids.append(record_gid(record))
    total = RECORDS * CHANGES_PER_RECORD
    admin = api.token()

    writer = asyncio.create_task(_change_many(servers, admin, record_ids, random.Random(20261124)))
    delivered: list[dict[str, Any]] = []
    sessions = 0
    try:
        while len(delivered) < total:
            sessions += 1
            assert sessions < 200, "the subscriber made no progress"
            server = servers[rng.randrange(2)]
            # Disconnect after a random number of events, sometimes before the first.
            take = min(rng.randint(0, 9), total - len(delivered))
            after = delivered[-1]["sequence"] if delivered else "0"
            async with connect(server, admin) as subscriber:
                assert (await subscriber.next_message())["type"] == "connection_ack"
                operation = await subscriber.subscribe(SUBSCRIPTION, {"after": after})
                for _ in range(take):
                    delivered.append(await next_event(subscriber, operation))
            # Leaving the block closes the socket with events possibly still in flight.
        await writer
    finally:
        writer.cancel()

    stored = await stored_events(sessionmaker, api.tenant_id)
    assert len(stored) == total
    sequences = [int(event["sequence"]) for event in delivered]
    assert sequences == [event.sequence for event in stored]
    assert sequences == sorted(set(sequences))
    assert [(e["previousStatus"], e["status"]) for e in delivered] == [
        (e.previous_status, e.status) for e in stored
    ]
    assert sessions > 10


async def test_replay_from_zero_is_the_visible_history(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await factory.provider(cognito_sub="dr-history")
    me = await factory.patient(cognito_sub="patient-history")
    someone_else = await factory.patient()
    doctor = api.token(subject="dr-history", groups=("provider",))
    # History: my record created, finalized, amended; another patient's record created and
    # finalized; a draft of mine that stays a draft.
    mine = (await created_record(servers[0], doctor, patient_gid(me)))["id"]
    theirs = (await created_record(servers[1], doctor, patient_gid(someone_else)))["id"]
    await created_record(servers[0], doctor, patient_gid(me))
    for record_id in (mine, theirs):
        await _add_primary(servers[1], doctor, record_id)
    finalized = await changed(servers[0], doctor, mine, "FINALIZED", 2)
    await changed(servers[1], doctor, theirs, "FINALIZED", 2)
    amended = await changed(servers[0], doctor, mine, "AMENDED", finalized["version"], "late")
    stored = await stored_events(sessionmaker, api.tenant_id)
    assert len(stored) == 6

    async with connect(servers[1], api.token()) as admin:
        assert (await admin.next_message())["type"] == "connection_ack"
        operation = await admin.subscribe(SUBSCRIPTION, {"after": "0"})
        everything = [await next_event(admin, operation) for _ in stored]
    assert [int(e["sequence"]) for e in everything] == [e.sequence for e in stored]

    patient_token = api.token(subject="patient-history", groups=("patient",))
    async with connect(servers[0], patient_token) as patient:
        assert (await patient.next_message())["type"] == "connection_ack"
        operation = await patient.subscribe(SUBSCRIPTION, {"after": "0"})
        replayed = [await next_event(patient, operation) for _ in range(2)]
        # Nothing else is in the patient's history: the next event is a live one.
        await changed(servers[1], doctor, mine, "AMENDED", amended["version"], "second addendum")
        live = await next_event(patient, operation)
    assert [(e["record"]["id"], e["status"]) for e in replayed] == [
        (mine, "FINALIZED"),
        (mine, "AMENDED"),
    ]
    assert (live["record"]["id"], live["status"], live["reason"]) == (
        mine,
        "AMENDED",
        "second addendum",
    )


async def _add_primary(server: Server, token: str, record_id: str) -> None:
    body = await graphql(
        server,
        token,
        ADD_DIAGNOSIS,
        {
            "input": {
                "recordId": record_id,
                "icd10Code": "J20.9",
                "description": "Acute bronchitis",
                "type": "PRIMARY",
            }
        },
    )
    assert "errors" not in body, body


@pytest.mark.parametrize(
    "after",
    [
        "abc",
        "-1",
        "",
        "1.5",
        # Digits to str.isdigit(), not to int(): superscript two.
        "\u00b2",
        # Twenty digits, and nineteen that overflow PostgreSQL's bigint.
        "1" * 20,
        "9" * 19,
    ],
)
async def test_a_malformed_after_sequence_is_bad_user_input(
    api: Api, servers: list[Server], after: str
) -> None:
    async with connect(servers[0], api.token()) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(SUBSCRIPTION, {"after": after})
        message = await subscriber.next_message()
        assert message["id"] == operation
        errors = (
            message["payload"]
            if message["type"] == "error"
            else message["payload"].get("errors") or []
        )
        assert errors, message
        # The message names the argument, and nothing of the server's insides (SQL, Python).
        [error] = errors
        assert "afterSequence" in error["message"], message
        assert "SELECT" not in error["message"], message
        assert "int()" not in error["message"], message
        assert error.get("extensions", {}).get("code") == "BAD_USER_INPUT", message
        if message["type"] == "next":
            assert (await subscriber.next_message())["type"] == "complete"
