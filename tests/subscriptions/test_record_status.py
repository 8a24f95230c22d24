"""Record-status subscriptions over graphql-transport-ws, across two server processes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import websockets

from app.opaque_ids import NodeType, OpaqueIds
from models.enums import RecordStatus
from tests.api_client import Api
from tests.factories import Factory
from tests.subscriptions.conftest import Server, connect

IDS = OpaqueIds("medrec-opaque-id-v1")

SUBSCRIPTION = """subscription($recordId: ID, $patientId: ID, $after: String) {
  recordStatusChanged(recordId: $recordId, patientId: $patientId, afterSequence: $after) {
    sequence previousStatus status changedBy reason
    record { id status patient { mrn } diagnoses { icd10Code } } } }"""
CHANGE = """mutation($input: ChangeRecordStatusInput!) {
  changeRecordStatus(input: $input) { record { version } } }"""


def change(
    server: Server, token: str, record_id: str, status: str, version: int, **extra: Any
) -> dict[str, Any]:
    response = httpx.post(
        f"{server.http_url}/graphql",
        json={
            "query": CHANGE,
            "variables": {
                "input": {"id": record_id, "status": status, "expectedVersion": version, **extra}
            },
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    body: dict[str, Any] = response.json()
    return body


async def test_a_change_through_one_process_reaches_a_subscriber_of_the_other(
    api: Api, factory: Factory, servers: list[Server]
) -> None:
    provider = await factory.provider(cognito_sub="dr-sub")
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(record)
    record_id = IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"])
    admin = api.token()
    async with connect(servers[0], admin) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(SUBSCRIPTION)
        result = change(
            servers[1], api.token(subject="dr-sub", groups=("provider",)), record_id, "FINALIZED", 1
        )
        assert "errors" not in result, result
        message = await subscriber.next_message()
        assert message["id"] == operation
        assert message["type"] == "next"
        event = message["payload"]["data"]["recordStatusChanged"]
        assert event["previousStatus"] == "DRAFT"
        assert event["status"] == "FINALIZED"
        assert event["changedBy"] == "dr-sub"
        assert event["record"] == {
            "id": record_id,
            "status": "FINALIZED",
            "patient": {"mrn": patient["mrn"]},
            "diagnoses": [{"icd10Code": "E11.9"}],
        }


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
