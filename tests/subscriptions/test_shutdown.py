"""SIGTERM: subscribers are told "going away" (1001) at once; in-flight requests still finish."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import pytest
import websockets
from sqlalchemy import select

from models import MedicalRecord
from models.enums import RecordStatus
from tests.servers import server_environment, serving_process
from tests.subscriptions.conftest import Server, connect
from tests.subscriptions.helpers import (
    SUBSCRIPTION,
    change_status,
    latest_sequence,
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


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_closes_subscriptions_with_going_away_and_drains_requests(
    workers: int,
    api: Api,
    factory: Factory,
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    record = await factory.record(
        await factory.patient(), await factory.provider(), status=RecordStatus.DRAFT
    )
    await factory.diagnosis(record)
    token = api.token()
    with serving_process(server_environment(settings), workers=workers) as (url, process):
        server = Server.at(url)
        async with connect(server, token) as subscriber:
            assert (await subscriber.next_message())["type"] == "connection_ack"
            await subscriber.subscribe(
                SUBSCRIPTION, {"after": await latest_sequence(sessionmaker, api.tenant_id)}
            )
            async with engine.connect() as holder:
                # The record is locked from outside, so the request below is still in flight
                # when the signal arrives.
                held = await holder.begin()
                await holder.execute(
                    select(MedicalRecord.id)
                    .where(MedicalRecord.id == record["id"])
                    .with_for_update()
                )
                in_flight = asyncio.create_task(
                    change_status(server, token, record_gid(record), "FINALIZED", 1)
                )
                await wait_until_blocked_by(holder)

                process.send_signal(signal.SIGTERM)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await subscriber.next_message(wait=5)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1001
                assert closed.value.rcvd.reason == "server shutting down"
                # Still draining: the request has not been cut off.
                assert not in_flight.done()
                assert process.poll() is None
                await held.commit()

            body = await in_flight
            assert "errors" not in body, body
            assert body["data"]["changeRecordStatus"]["record"]["status"] == "FINALIZED"
        # Once drained, a single uvicorn process re-raises the signal it caught (so it ends as if
        # killed by it) and the multi-worker supervisor exits 0; either way, within the wait.
        exit_status = await asyncio.to_thread(process.wait, 30)
        assert exit_status == (-signal.SIGTERM if workers == 1 else 0)
    async with sessionmaker() as session:
        stored = await session.get(MedicalRecord, record["id"])
        assert stored is not None
        assert stored.status == RecordStatus.FINALIZED
