"""Every event is checked against the subscriber's tenant, role and filters before delivery.

"Gets nothing" is shown without sleeping: the invisible change is committed first, then a visible
one; a subscriber that would have received the first sees it as its next message instead.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from models.enums import RecordStatus
from tests.factories import Factory
from tests.subscriptions.conftest import Server, Subscriber, connect
from tests.subscriptions.helpers import (
    SUBSCRIPTION,
    changed,
    created_record,
    latest_sequence,
    next_event,
    patient_gid,
    record_gid,
)

if TYPE_CHECKING:
    from typing import Any

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api


async def _subscribed(
    subscriber: Subscriber,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: str,
    **variables: Any,
) -> str:
    assert (await subscriber.next_message())["type"] == "connection_ack"
    after = await latest_sequence(sessionmaker, tenant_id)
    return await subscriber.subscribe(SUBSCRIPTION, {"after": after, **variables})


async def _draft(factory: Factory, patient: dict[str, Any], provider: dict[str, Any]) -> str:
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(record)
    return record_gid(record)


async def test_another_tenants_admin_gets_nothing(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    other_tenant = f"t-{uuid.uuid4().hex[:10]}"
    other = Factory(sessionmaker, other_tenant)
    mine = await _draft(factory, await factory.patient(), await factory.provider())
    theirs = await _draft(other, await other.patient(), await other.provider())
    async with connect(servers[0], api.token(tenant_id=other_tenant)) as subscriber:
        operation = await _subscribed(subscriber, sessionmaker, other_tenant)
        await changed(servers[1], api.token(), mine, "FINALIZED", 1)
        await changed(servers[1], api.token(tenant_id=other_tenant), theirs, "FINALIZED", 1)
        event = await next_event(subscriber, operation)
    assert event["record"]["id"] == theirs


async def test_a_patient_gets_only_finalized_and_amended_events_of_its_own_records(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    provider = await factory.provider(cognito_sub="dr-pat")
    me = await factory.patient(cognito_sub="patient-me")
    someone_else = await factory.patient(cognito_sub="patient-else")
    mine = await _draft(factory, me, provider)
    mine_in_error = await _draft(factory, me, provider)
    theirs = await _draft(factory, someone_else, provider)
    doctor = api.token(subject="dr-pat", groups=("provider",))
    admin = api.token()
    patient_token = api.token(subject="patient-me", groups=("patient",))
    async with connect(servers[0], patient_token) as subscriber:
        operation = await _subscribed(subscriber, sessionmaker, api.tenant_id)
        # Invisible: a new draft of mine, and another patient's record being finalized.
        await created_record(servers[1], doctor, patient_gid(me))
        theirs_now = await changed(servers[1], doctor, theirs, "FINALIZED", 1)
        first = await changed(servers[0], doctor, mine, "FINALIZED", 1)
        event = await next_event(subscriber, operation)
        assert (event["record"]["id"], event["status"]) == (mine, "FINALIZED")
        assert event["record"]["patient"] == {"mrn": me["mrn"]}
        # Invisible: my draft entered in error, another patient's record amended.
        await changed(servers[1], admin, mine_in_error, "ENTERED_IN_ERROR", 1, "wrong chart")
        await changed(servers[1], doctor, theirs, "AMENDED", theirs_now["version"], "addendum")
        await changed(servers[0], doctor, mine, "AMENDED", first["version"], "addendum")
        event = await next_event(subscriber, operation)
        assert (event["record"]["id"], event["status"]) == (mine, "AMENDED")
        assert event["previousStatus"] == "FINALIZED"


async def test_a_provider_gets_no_events_of_another_providers_drafts(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await factory.provider(cognito_sub="dr-watching")
    await factory.provider(cognito_sub="dr-other")
    other = await factory.provider()
    patient = await factory.patient()
    watching = api.token(subject="dr-watching", groups=("provider",))
    other_token = api.token(subject="dr-other", groups=("provider",))
    others_draft = await _draft(factory, patient, other)
    async with connect(servers[0], watching) as subscriber:
        operation = await _subscribed(subscriber, sessionmaker, api.tenant_id)
        # Invisible: another provider's new draft.
        await created_record(servers[1], other_token, patient_gid(patient))
        # Visible: the watching provider's own new draft.
        own = await created_record(servers[1], watching, patient_gid(patient))
        event = await next_event(subscriber, operation)
        assert (event["record"]["id"], event["previousStatus"], event["status"]) == (
            own["id"],
            None,
            "DRAFT",
        )
        # Invisible: another draft of the other provider; visible: a record that is no draft.
        await created_record(servers[0], other_token, patient_gid(patient))
        await changed(servers[1], api.token(), others_draft, "FINALIZED", 1)
        event = await next_event(subscriber, operation)
    assert (event["record"]["id"], event["status"]) == (others_draft, "FINALIZED")


async def test_record_and_patient_filters(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    provider = await factory.provider()
    first_patient = await factory.patient()
    second_patient = await factory.patient()
    wanted = await _draft(factory, first_patient, provider)
    other_of_same_patient = await _draft(factory, first_patient, provider)
    of_second_patient = await _draft(factory, second_patient, provider)
    admin = api.token()
    async with connect(servers[0], admin) as by_record, connect(servers[1], admin) as by_patient:
        record_operation = await _subscribed(
            by_record, sessionmaker, api.tenant_id, recordId=wanted
        )
        patient_operation = await _subscribed(
            by_patient, sessionmaker, api.tenant_id, patientId=patient_gid(first_patient)
        )
        await changed(servers[1], admin, of_second_patient, "FINALIZED", 1)
        await changed(servers[0], admin, other_of_same_patient, "FINALIZED", 1)
        await changed(servers[1], admin, wanted, "FINALIZED", 1)
        by_record_event = await next_event(by_record, record_operation)
        by_patient_events = [await next_event(by_patient, patient_operation) for _ in range(2)]
    assert by_record_event["record"]["id"] == wanted
    assert [event["record"]["id"] for event in by_patient_events] == [
        other_of_same_patient,
        wanted,
    ]
