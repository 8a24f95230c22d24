"""Who may hold a subscription open: tokens at connection_init, their expiry, the Origin, and the
size of the messages it sends."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import websockets
from websockets.typing import Origin

from models.enums import RecordStatus
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

    from app.ops.dev_issuer import LocalTokenIssuer
    from app.settings import Settings
    from tests.api_client import Api
    from tests.factories import Factory

LIFETIME = 3


async def test_the_subscription_ends_when_the_token_expires(
    api: Api,
    issuer: LocalTokenIssuer,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    record = await factory.record(
        await factory.patient(), await factory.provider(), status=RecordStatus.DRAFT
    )
    await factory.diagnosis(record)
    short = issuer.issue(
        "admin-subject",
        groups=("admin",),
        tenant_id=api.tenant_id,
        lifetime=timedelta(seconds=LIFETIME),
    )
    issued = time.monotonic()
    async with connect(servers[0], short) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(
            SUBSCRIPTION, {"after": await latest_sequence(sessionmaker, api.tenant_id)}
        )
        # Live until then.
        await changed(servers[1], api.token(), record_gid(record), "FINALIZED", 1)
        assert (await next_event(subscriber, operation))["status"] == "FINALIZED"
        complete = await subscriber.next_message(wait=LIFETIME + 5)
        assert complete == {"id": operation, "type": "complete"}
        # Not before the token's exp (whole seconds, so up to one early), nor long after.
        assert LIFETIME - 1.5 <= time.monotonic() - issued <= LIFETIME + 3
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await subscriber.next_message(wait=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


@pytest.mark.parametrize("kind", ["no tenant", "no role"])
async def test_a_token_without_tenant_or_role_gets_forbidden(
    api: Api, servers: list[Server], kind: str
) -> None:
    """Accepted at connection_init (it may still query `me`), refused for the subscription."""
    token = api.token(tenant_id=None) if kind == "no tenant" else api.token(groups=())
    async with connect(servers[1], token) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(SUBSCRIPTION)
        message = await subscriber.next_message()
        assert message["id"] == operation
        assert message["type"] == "next", message
        assert message["payload"]["data"] is None
        errors = message["payload"]["errors"]
        assert [error.get("extensions", {}).get("code") for error in errors] == ["FORBIDDEN"], (
            message
        )
        assert (await subscriber.next_message())["type"] == "complete"


async def test_a_handshake_from_a_foreign_origin_is_refused(
    api: Api, servers: list[Server]
) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(servers[0], api.token(), origin=Origin("https://evil.example")):
            pass
    assert refused.value.response.status_code == 403


async def test_a_handshake_from_the_allowed_origin_is_accepted(
    api: Api, servers: list[Server]
) -> None:
    async with connect(
        servers[0], api.token(), origin=Origin("https://clinic.example")
    ) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"


@pytest.mark.parametrize("text", ["ascii", "multi-byte"])
async def test_a_message_over_the_size_limit_closes_the_socket_unanswered(
    api: Api, settings: Settings, servers: list[Server], text: str
) -> None:
    limit = settings.max_request_bytes
    # Multi-byte: fewer characters than the limit, more bytes.
    padding = "x" * (limit + 1) if text == "ascii" else "\u00e9" * (limit // 2 + 1)
    oversized = json.dumps(
        {
            "id": "too-big",
            "type": "subscribe",
            "payload": {"query": SUBSCRIPTION, "variables": {"after": padding}},
        },
        ensure_ascii=False,
    )
    async with connect(servers[0], api.token()) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        await subscriber.socket.send(oversized)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await subscriber.next_message(wait=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_a_message_within_the_size_limit_is_answered(
    api: Api, settings: Settings, servers: list[Server]
) -> None:
    """A message of exactly the limit is parsed, and refused for its content only."""

    def message(padding: str) -> str:
        payload = {"query": SUBSCRIPTION, "variables": {"after": padding}}
        return json.dumps({"id": "near-limit", "type": "subscribe", "payload": payload})

    at_limit = message("x" * (settings.max_request_bytes - len(message(""))))
    assert len(at_limit) == settings.max_request_bytes
    async with connect(servers[0], api.token()) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        await subscriber.socket.send(at_limit)
        answer = await subscriber.next_message()
    assert answer["id"] == "near-limit"
    errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["BAD_USER_INPUT"]
