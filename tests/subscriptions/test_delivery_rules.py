"""Before every delivery, replayed ones included, the subscriber must still hold an unexpired token
and the provider or patient link it acts through."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import websockets
from sqlalchemy import update

from app.ops.dev_issuer import JWKSServer, LocalTokenIssuer
from models import Patient, Provider
from models.enums import RecordStatus
from tests.servers import server_environment, serving
from tests.subscriptions.conftest import Server, connect
from tests.subscriptions.helpers import (
    SUBSCRIPTION,
    changed,
    latest_sequence,
    next_event,
    record_gid,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.settings import Settings
    from tests.api_client import Api
    from tests.factories import Factory


async def test_a_replay_after_the_token_expired_delivers_nothing(
    api: Api,
    issuer: LocalTokenIssuer,
    factory: Factory,
    servers: list[Server],
) -> None:
    record = await factory.record(await factory.patient(), await factory.provider())
    for _ in range(150):  # more than a page of the fan-out's reads
        await factory.status_event(record, status=RecordStatus.AMENDED)
    # Expired five seconds ago: still accepted at connection_init, within the verifier's leeway
    # for clock skew, but past its `exp`.
    expired = issuer.issue(
        "admin-subject",
        groups=("admin",),
        tenant_id=api.tenant_id,
        now=datetime.now(UTC) - timedelta(seconds=65),
        lifetime=timedelta(seconds=60),
    )
    async with connect(servers[0], expired) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(SUBSCRIPTION, {"after": "0"})
        assert await subscriber.next_message() == {"id": operation, "type": "complete"}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await subscriber.next_message(wait=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token expired")


async def _deactivate(sessionmaker: async_sessionmaker[AsyncSession], provider_id: Any) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Provider).where(Provider.id == provider_id).values(active=False)
        )


async def _unlink(sessionmaker: async_sessionmaker[AsyncSession], patient_id: Any) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Patient).where(Patient.id == patient_id).values(cognito_sub=None)
        )


@pytest.mark.parametrize("who", ["a deactivated provider", "an unlinked patient"])
async def test_a_subscriber_whose_link_no_longer_holds_receives_nothing_more(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
    who: str,
) -> None:
    provider = await factory.provider(cognito_sub="dr-leaving")
    patient = await factory.patient(cognito_sub="patient-leaving")
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(record)
    if who == "a deactivated provider":
        token = api.token(subject="dr-leaving", groups=("provider",))
    else:
        token = api.token(subject="patient-leaving", groups=("patient",))
    admin = api.token()
    async with connect(servers[0], token) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(
            SUBSCRIPTION, {"after": await latest_sequence(sessionmaker, api.tenant_id)}
        )
        finalized = await changed(servers[1], admin, record_gid(record), "FINALIZED", 1)
        assert (await next_event(subscriber, operation))["status"] == "FINALIZED"

        if who == "a deactivated provider":
            await _deactivate(sessionmaker, provider["id"])
        else:
            await _unlink(sessionmaker, patient["id"])
        await changed(
            servers[1], admin, record_gid(record), "AMENDED", finalized["version"], "addendum"
        )
        message = await subscriber.next_message()
        assert message["id"] == operation, message
        assert message["type"] == "next", message
        # The event is not in it: only the refusal.
        assert message["payload"]["data"] is None, message
        [error] = message["payload"]["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN", message
        assert await subscriber.next_message() == {"id": operation, "type": "complete"}


async def test_a_subscriber_whose_signing_key_left_the_jwks_receives_nothing_more(
    api: Api,
    issuer: LocalTokenIssuer,
    factory: Factory,
    servers: list[Server],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    patient, provider = await factory.patient(), await factory.provider()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.diagnosis(record)
    published = [issuer.public_jwk()]
    other_key = LocalTokenIssuer(issuer=issuer.issuer, client_id=issuer.client_id)
    environment = server_environment(settings, MEDREC_JWKS_MAX_AGE_SECONDS="1")
    admin = api.token()
    with (
        JWKSServer(lambda: {"keys": published}) as jwks,
        serving({**environment, "MEDREC_COGNITO_JWKS_URL": jwks.url}) as url,
    ):
        async with connect(Server.at(url), admin) as subscriber:
            assert (await subscriber.next_message())["type"] == "connection_ack"
            operation = await subscriber.subscribe(
                SUBSCRIPTION, {"after": await latest_sequence(sessionmaker, api.tenant_id)}
            )
            finalized = await changed(servers[0], admin, record_gid(record), "FINALIZED", 1)
            assert (await next_event(subscriber, operation))["status"] == "FINALIZED"

            published[:] = [other_key.public_jwk()]  # the pool rotated its key away
            await asyncio.sleep(1.5)  # past the max age: the next delivery refetches
            await changed(
                servers[0], admin, record_gid(record), "AMENDED", finalized["version"], "late"
            )
            # Nothing delivered: the operation completes, and the socket closes.
            assert await subscriber.next_message() == {"id": operation, "type": "complete"}
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await subscriber.next_message(wait=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "unknown signing key")
