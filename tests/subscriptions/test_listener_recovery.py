"""The per-process LISTEN connection comes back after the database drops it, and nothing is lost."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy import text

from app.data.status_stream import LISTENER_APPLICATION_NAME
from models.enums import RecordStatus
from tests.subscriptions.conftest import connect
from tests.subscriptions.helpers import (
    SUBSCRIPTION,
    changed,
    latest_sequence,
    next_event,
    record_gid,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory
    from tests.subscriptions.conftest import Server


async def _drop_listeners(engine: AsyncEngine) -> int:
    """What a database restart does to the servers' LISTEN connections."""
    async with engine.connect() as connection:
        dropped = (
            await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :listener"
                ),
                {"listener": LISTENER_APPLICATION_NAME},
            )
        ).scalar_one()
        await connection.commit()
    return int(dropped)


async def test_events_still_arrive_after_the_listeners_are_dropped(
    api: Api,
    factory: Factory,
    servers: list[Server],
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    provider = await factory.provider(cognito_sub="dr-recover")
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.FINALIZED)
    record_id = record_gid(record)
    doctor = api.token(subject="dr-recover", groups=("provider",))
    after = await latest_sequence(sessionmaker, api.tenant_id)
    async with connect(servers[0], api.token()) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(SUBSCRIPTION, {"after": after})

        # Both server processes (and this test's in-process app) lose their LISTEN connection.
        assert await _drop_listeners(engine) >= 2
        # A change made while no one listens is caught up on reconnect; one made after, live.
        await changed(servers[1], doctor, record_id, "AMENDED", 1, reason="while reconnecting")
        first = await next_event(subscriber, operation, wait=15)
        await asyncio.sleep(1.5)
        await changed(servers[1], doctor, record_id, "AMENDED", 2, reason="after reconnecting")
        second = await next_event(subscriber, operation, wait=15)

    assert (first["reason"], second["reason"]) == ("while reconnecting", "after reconnecting")
    assert int(second["sequence"]) > int(first["sequence"])
