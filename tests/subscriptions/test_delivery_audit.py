"""Each delivered event has its own audit row, naming exactly the patients and records its payload
holds, however deeply its selection reached them."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from models.enums import AuditOutcome, RecordStatus
from tests.api_client import audit_rows
from tests.subscriptions.conftest import connect
from tests.subscriptions.helpers import IDS, changed, latest_sequence, next_event, record_gid

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory
    from tests.subscriptions.conftest import Server

NESTED = """subscription($after: String) {
  recordStatusChanged(afterSequence: $after) {
    sequence status
    record {
      id patient { id }
      provider { patients(first: 20) { edges { node { id mrn } } } } } } }"""


def _patients_in(event: dict[str, Any]) -> set[uuid.UUID]:
    record = event["record"]
    gids = {record["patient"]["id"]}
    gids |= {edge["node"]["id"] for edge in record["provider"]["patients"]["edges"]}
    return {IDS.decode_id(gid)[1] for gid in gids}


async def test_each_delivery_row_names_exactly_the_patients_of_its_own_payload(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    doctor = await factory.provider(cognito_sub="dr-nested-audit")
    # The doctor's own patients: the first event's payload lists all 17 under `provider`.
    first_patient = await factory.patient(primary_provider_id=doctor["id"])
    for _ in range(16):
        await factory.patient(primary_provider_id=doctor["id"])
    first = await factory.record(first_patient, doctor, status=RecordStatus.DRAFT)
    await factory.diagnosis(first)
    # The second event's record is another provider's, who has no patients of their own.
    second_patient = await factory.patient()
    second = await factory.record(
        second_patient, await factory.provider(), status=RecordStatus.DRAFT
    )
    await factory.diagnosis(second)
    request_id = f"nested-audit-{uuid.uuid4().hex}"
    token = api.token(subject="dr-nested-audit", groups=("provider",))

    async with connect(
        servers[0], token, additional_headers={"X-Request-ID": request_id}
    ) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(
            NESTED, {"after": await latest_sequence(sessionmaker, api.tenant_id)}
        )
        await changed(servers[1], api.token(), record_gid(first), "FINALIZED", 1)
        first_event = await next_event(subscriber, operation)
        await changed(servers[1], api.token(), record_gid(second), "FINALIZED", 1)
        second_event = await next_event(subscriber, operation)
        # Each row committed before its event was sent.
        rows = await audit_rows(sessionmaker, request_id)

    assert len(_patients_in(first_event)) == 17
    assert _patients_in(second_event) == {second_patient["id"]}
    assert [row["operation_type"] for row in rows] == ["subscription", "subscription"]
    assert [row["outcome"] for row in rows] == [AuditOutcome.OK, AuditOutcome.OK]
    assert set(rows[0]["patient_ids"]) == _patients_in(first_event)
    assert rows[0]["record_ids"] == [first["id"]]
    # Nothing of the first payload is carried over into the second delivery's row.
    assert rows[1]["patient_ids"] == [second_patient["id"]]
    assert rows[1]["record_ids"] == [second["id"]]


async def test_two_subscriptions_on_one_socket_keep_their_rows_apart(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    doctor = await factory.provider(cognito_sub="dr-two-ops")
    doctors_patients = {
        (await factory.patient(primary_provider_id=doctor["id"]))["id"] for _ in range(5)
    }
    patient = await factory.patient()
    record = await factory.record(patient, doctor, status=RecordStatus.DRAFT)
    await factory.diagnosis(record)
    request_id = f"two-ops-{uuid.uuid4().hex}"
    plain = """subscription($after: String) {
      recordStatusChanged(afterSequence: $after) { sequence record { id } } }"""

    async with connect(
        servers[0],
        api.token(subject="dr-two-ops", groups=("provider",)),
        additional_headers={"X-Request-ID": request_id},
    ) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        after = await latest_sequence(sessionmaker, api.tenant_id)
        nested = await subscriber.subscribe(NESTED, {"after": after})
        without = await subscriber.subscribe(plain, {"after": after})
        await changed(servers[1], api.token(), record_gid(record), "FINALIZED", 1)
        operations = set()
        for _ in range(2):
            message = await subscriber.next_message()
            assert message["type"] == "next", message
            operations.add(message["id"])
        rows = await audit_rows(sessionmaker, request_id)

    assert operations == {nested, without}
    # Each delivery discloses the record, and with it its patient; only the nested selection
    # reached the doctor's patients, and the plain one's row does not name them.
    assert sorted((sorted(row["patient_ids"]) for row in rows), key=len) == [
        [patient["id"]],
        sorted({patient["id"], *doctors_patients}),
    ]
    assert [row["record_ids"] for row in rows] == [[record["id"]], [record["id"]]]
