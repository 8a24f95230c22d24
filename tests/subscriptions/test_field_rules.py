"""Field rules hold in subscription payloads too: a patient's event carries null for the record's
staff note, clinic staff's the note."""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.enums import RecordStatus
from tests.subscriptions.conftest import connect
from tests.subscriptions.helpers import changed, latest_sequence, next_event, record_gid

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory
    from tests.subscriptions.conftest import Server

STAFF_NOTE = """subscription($after: String) {
  recordStatusChanged(afterSequence: $after) { status record { notes staffNote } } }"""


async def test_a_patients_event_carries_no_staff_note_and_a_providers_does(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    doctor = await factory.provider(cognito_sub="dr-field-rules")
    patient = await factory.patient(primary_provider_id=doctor["id"], cognito_sub="pt-field-rules")
    record = await factory.record(
        patient, doctor, status=RecordStatus.FINALIZED, notes="rest", staff_note="staff only"
    )
    after = await latest_sequence(sessionmaker, api.tenant_id)
    tokens = {
        "patient": api.token(subject="pt-field-rules", groups=("patient",)),
        "provider": api.token(subject="dr-field-rules", groups=("provider",)),
    }

    events = {}
    async with (
        connect(servers[0], tokens["patient"]) as as_patient,
        connect(servers[0], tokens["provider"]) as as_provider,
    ):
        operations = {}
        for role, subscriber in (("patient", as_patient), ("provider", as_provider)):
            assert (await subscriber.next_message())["type"] == "connection_ack"
            operations[role] = await subscriber.subscribe(STAFF_NOTE, {"after": after})
        await changed(servers[1], api.token(), record_gid(record), "AMENDED", 1, "addendum")
        events["patient"] = await next_event(as_patient, operations["patient"])
        events["provider"] = await next_event(as_provider, operations["provider"])

    assert events["patient"]["record"] == {"notes": "rest", "staffNote": None}
    assert events["provider"]["record"] == {"notes": "rest", "staffNote": "staff only"}
