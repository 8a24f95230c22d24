"""Record-status subscriptions over graphql-transport-ws, across two server processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import websockets

from models.enums import DiagnosisType, RecordStatus
from tests.subscriptions.conftest import Server, connect
from tests.subscriptions.helpers import (
    ADD_DIAGNOSIS,
    SUBSCRIPTION,
    changed,
    created_record,
    graphql,
    latest_sequence,
    next_event,
    patient_gid,
    record_gid,
    stored_events,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory


async def test_a_change_through_one_process_reaches_a_subscriber_of_the_other(
    api: Api, factory: Factory, servers: list[Server]
) -> None:
    provider = await factory.provider(cognito_sub="dr-sub")
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(record)
    record_id = record_gid(record)
    admin = api.token()
    async with connect(servers[0], admin) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(SUBSCRIPTION)
        await changed(
            servers[1], api.token(subject="dr-sub", groups=("provider",)), record_id, "FINALIZED", 1
        )
        event = await next_event(subscriber, operation)
        assert event["previousStatus"] == "DRAFT"
        assert event["status"] == "FINALIZED"
        assert event["changedBy"] == "dr-sub"
        assert event["record"] == {
            "id": record_id,
            "status": "FINALIZED",
            "patient": {"mrn": patient["mrn"]},
            "diagnoses": [{"icd10Code": "E11.9"}],
        }


async def test_create_record_publishes_a_null_to_draft_event(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await factory.provider(cognito_sub="dr-create")
    patient = await factory.patient()
    provider_token = api.token(subject="dr-create", groups=("provider",))
    async with connect(servers[0], api.token()) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(
            SUBSCRIPTION, {"after": await latest_sequence(sessionmaker, api.tenant_id)}
        )
        record = await created_record(servers[1], provider_token, patient_gid(patient))
        event = await next_event(subscriber, operation)
    assert event["previousStatus"] is None
    assert event["status"] == "DRAFT"
    assert event["changedBy"] == "dr-create"
    assert event["reason"] is None
    assert event["record"] == {
        "id": record["id"],
        "status": "DRAFT",
        "patient": {"mrn": patient["mrn"]},
        "diagnoses": [],
    }
    [stored] = await stored_events(sessionmaker, api.tenant_id)
    assert event["sequence"] == str(stored.sequence)


async def test_nested_fields_are_read_as_they_are_when_each_event_is_delivered(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    provider = await factory.provider(cognito_sub="dr-nested")
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(record)
    record_id = record_gid(record)
    token = api.token(subject="dr-nested", groups=("provider",))
    # A diagnosis added through the API after the subscriber connected is part of the record
    # the first event carries.
    async with connect(servers[0], api.token()) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(
            SUBSCRIPTION, {"after": await latest_sequence(sessionmaker, api.tenant_id)}
        )
        added = await graphql(
            servers[1],
            token,
            ADD_DIAGNOSIS,
            {
                "input": {
                    "recordId": record_id,
                    "icd10Code": "I10",
                    "description": "Essential hypertension",
                    "type": DiagnosisType.SECONDARY.name,
                }
            },
        )
        assert "errors" not in added, added
        finalized = await changed(servers[1], token, record_id, "FINALIZED", 2)
        first = await next_event(subscriber, operation)
        assert first["status"] == "FINALIZED"
        assert first["record"]["status"] == "FINALIZED"
        assert first["record"]["patient"] == {"mrn": patient["mrn"]}
        assert sorted(d["icd10Code"] for d in first["record"]["diagnoses"]) == ["E11.9", "I10"]
        # The next event gets fresh loaders: its record is not the one cached for the first.
        await changed(servers[0], token, record_id, "AMENDED", finalized["version"], "typo")
        second = await next_event(subscriber, operation)
        assert second["status"] == "AMENDED"
        assert second["reason"] == "typo"
        assert second["record"]["status"] == "AMENDED"
    # Replayed events are read now too: the FINALIZED event shows the record as AMENDED.
    async with connect(servers[1], api.token()) as replay:
        assert (await replay.next_message())["type"] == "connection_ack"
        operation = await replay.subscribe(SUBSCRIPTION, {"after": "0"})
        replayed = [await next_event(replay, operation) for _ in range(2)]
    assert [event["status"] for event in replayed] == ["FINALIZED", "AMENDED"]
    assert [event["record"]["status"] for event in replayed] == ["AMENDED", "AMENDED"]


@pytest.mark.parametrize("token", [None, "garbage", "expired"])
async def test_a_bad_token_is_refused_with_4403(
    api: Api, servers: list[Server], token: str | None
) -> None:
    if token == "expired":
        token = api.token(claims={"exp": 1_000_000_000})
    async with connect(servers[0], token) as subscriber:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await subscriber.next_message()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403
