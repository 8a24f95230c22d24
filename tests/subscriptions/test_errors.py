"""A subscription whose database access fails ends with a masked, coded error, as HTTP does."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from models import MedicalRecord
from models.enums import RecordStatus
from tests.servers import server_environment, serving
from tests.subscriptions.conftest import Server, connect
from tests.subscriptions.helpers import (
    SUBSCRIPTION,
    change_status,
    changed,
    latest_sequence,
    next_event,
    record_gid,
    wait_until_blocked_by,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import (
        AsyncEngine,
        AsyncSession,
        async_sessionmaker,
    )

    from app.settings import Settings
    from tests.api_client import Api
    from tests.factories import Factory
    from tests.subscriptions.conftest import Subscriber

UNAVAILABLE = "the database is unavailable; retry shortly"


async def _failure(subscriber: Subscriber, operation: str) -> list[dict[str, Any]]:
    """The errors of the operation's last message; the stream must complete right after."""
    message = await subscriber.next_message(wait=15)
    assert message.get("id") == operation, message
    assert message["type"] == "next", message
    assert message["payload"]["data"] is None, message
    errors: list[dict[str, Any]] = message["payload"]["errors"]
    assert await subscriber.next_message() == {"id": operation, "type": "complete"}
    return errors


async def test_a_pool_timeout_reaches_the_subscriber_masked(
    api: Api,
    factory: Factory,
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    provider = await factory.provider(cognito_sub="dr-pool-timeout")
    records = [
        await factory.record(await factory.patient(), provider, status=RecordStatus.DRAFT)
        for _ in range(2)
    ]
    for record in records:
        await factory.diagnosis(record)
    token = api.token(subject="dr-pool-timeout", groups=("provider",))
    # Two pooled connections, each held by a mutation blocked on a row lock (its transaction),
    # and whoever needs a third gives up after a second.
    environment = server_environment(
        settings,
        MEDREC_DB_POOL_SIZE="2",
        MEDREC_DB_MAX_OVERFLOW="0",
        MEDREC_DB_POOL_TIMEOUT_SECONDS="1",
    )
    with serving(environment) as url:
        server = Server.at(url)
        async with connect(
            server, token, additional_headers={"X-Request-ID": "pool-timeout-1"}
        ) as subscriber:
            assert (await subscriber.next_message())["type"] == "connection_ack"
            after = await latest_sequence(sessionmaker, api.tenant_id)
            async with engine.connect() as holder:
                held = await holder.begin()
                await holder.execute(
                    select(MedicalRecord.id)
                    .where(MedicalRecord.id.in_([record["id"] for record in records]))
                    .with_for_update()
                )
                blocked = [
                    asyncio.create_task(
                        change_status(server, token, record_gid(record), "FINALIZED", 1)
                    )
                    for record in records
                ]
                await wait_until_blocked_by(holder, count=2)
                operation = await subscriber.subscribe(SUBSCRIPTION, {"after": after})
                errors = await _failure(subscriber, operation)
                await held.rollback()
            for request in blocked:
                assert "errors" not in await request, "the blocked requests finish once let go"

    # Only our message, the code and the request id: nothing of SQLAlchemy's "QueuePool ...".
    assert errors == [
        {
            "message": UNAVAILABLE,
            "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "pool-timeout-1"},
        }
    ]


async def test_a_refused_audit_row_ends_only_that_subscription_masked(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
    failing_request_id: str,
) -> None:
    provider = await factory.provider(cognito_sub="dr-audit-fails")
    record = await factory.record(await factory.patient(), provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(record)
    after = await latest_sequence(sessionmaker, api.tenant_id)
    async with (
        connect(
            servers[0], api.token(), additional_headers={"X-Request-ID": failing_request_id}
        ) as refused,
        connect(servers[0], api.token()) as audited,
    ):
        assert (await refused.next_message())["type"] == "connection_ack"
        assert (await audited.next_message())["type"] == "connection_ack"
        refused_operation = await refused.subscribe(SUBSCRIPTION, {"after": after})
        audited_operation = await audited.subscribe(SUBSCRIPTION, {"after": after})
        await changed(
            servers[1],
            api.token(subject="dr-audit-fails", groups=("provider",)),
            record_gid(record),
            "FINALIZED",
            1,
        )
        # Both deliveries' rows go to the same process's audit writer; only the refused one
        # fails, and its event is not sent.
        event = await next_event(audited, audited_operation)
        errors = await _failure(refused, refused_operation)

    assert event["status"] == "FINALIZED"
    # The trigger's own text ("audit store unavailable") stays on the server.
    assert errors == [
        {
            "message": UNAVAILABLE,
            "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": failing_request_id},
        }
    ]
