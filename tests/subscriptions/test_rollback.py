"""A change whose transaction rolls back publishes nothing, though its NOTIFY was queued."""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.enums import RecordStatus
from tests.api_client import error_codes
from tests.subscriptions.conftest import Server, connect
from tests.subscriptions.helpers import (
    SUBSCRIPTION,
    change_status,
    changed,
    latest_sequence,
    next_event,
    record_gid,
    stored_events,
    stored_record,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory


async def test_a_rolled_back_change_publishes_nothing(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
    failing_request_id: str,
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    refused = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(refused)
    other = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(other)
    admin = api.token()
    async with connect(servers[0], admin) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(
            SUBSCRIPTION, {"after": await latest_sequence(sessionmaker, api.tenant_id)}
        )
        # The status update, the event row and pg_notify all ran; the audit row failed.
        failed = await change_status(
            servers[1],
            admin,
            record_gid(refused),
            "FINALIZED",
            1,
            headers={"X-Request-ID": failing_request_id},
        )
        assert error_codes(failed) == ["INTERNAL_SERVER_ERROR"], failed
        assert await stored_record(sessionmaker, refused["id"]) == ("DRAFT", 1)
        assert await stored_events(sessionmaker, api.tenant_id) == []
        await changed(servers[1], admin, record_gid(other), "FINALIZED", 1)
        event = await next_event(subscriber, operation)
    assert (event["record"]["id"], event["status"]) == (record_gid(other), "FINALIZED")
    [stored] = await stored_events(sessionmaker, api.tenant_id)
    assert event["sequence"] == str(stored.sequence)
    assert await stored_record(sessionmaker, refused["id"]) == ("DRAFT", 1)
