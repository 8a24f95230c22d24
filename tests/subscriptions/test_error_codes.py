"""Every error a WebSocket client can receive carries one of the contract's codes, whichever part
of the stack refused it: the schema, our resolvers, or Strawberry's protocol handler."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import websockets
from websockets.typing import Subprotocol

from app.domain.errors import ErrorCode
from app.server.persisted_queries import register
from tests.servers import server_environment, serving
from tests.subscriptions.conftest import PROTOCOL, Server, connect
from tests.subscriptions.helpers import SUBSCRIPTION

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.settings import Settings
    from tests.api_client import Api
    from tests.subscriptions.conftest import Subscriber

CONTRACT_CODES = {code.value for code in ErrorCode}

PLAIN = "subscription { recordStatusChanged { sequence } }"
BAD_MUTATION = """mutation {
  changeRecordStatus(input: {id: "nope", status: FINALIZED, expectedVersion: 1}) { record { id } }
}"""
TOO_MANY_ALIASES = (
    "subscription { recordStatusChanged { "
    + " ".join(f"a{n}: sequence" for n in range(40))
    + " } }"
)
TOO_DEEP = (
    "subscription { recordStatusChanged { record { "
    + "patient { records { edges { node { " * 6
    + "id"
    + " } } } }" * 6
    + " } } }"
)


def _errors(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The errors of an `error` message, or of a `next` one; none for anything else."""
    if message["type"] == "error":
        errors: list[dict[str, Any]] = message["payload"]
        return errors
    if message["type"] == "next":
        return list(message["payload"].get("errors") or [])
    return []


async def _first_errors(subscriber: Subscriber, operation: str) -> list[dict[str, Any]]:
    message = await subscriber.next_message()
    assert message.get("id") == operation, message
    errors = _errors(message)
    assert errors, message
    return errors


async def _coded_messages_until_closed(subscriber: Subscriber) -> None:
    """Whatever arrives before the close (an earlier operation's answer) carries codes."""
    while True:
        _codes(_errors(await subscriber.next_message()))


def _codes(errors: list[dict[str, Any]]) -> list[str | None]:
    codes = [(error.get("extensions") or {}).get("code") for error in errors]
    assert set(codes) <= CONTRACT_CODES, errors
    return codes


@pytest.mark.parametrize(
    ("case", "document", "extra", "code"),
    [
        ("a document that does not parse", "subscription {", None, "BAD_USER_INPUT"),
        ("an unknown operation name", PLAIN, {"operationName": "Other"}, "BAD_USER_INPUT"),
        (
            "two operations and no operationName",
            "subscription A { recordStatusChanged { sequence } }"
            " subscription B { recordStatusChanged { status } }",
            None,
            "BAD_USER_INPUT",
        ),
        (
            "an unknown field",
            "subscription { recordStatusChanged { nope } }",
            None,
            "BAD_USER_INPUT",
        ),
        (
            "an unknown directive",
            "subscription { recordStatusChanged @defer { sequence } }",
            None,
            "BAD_USER_INPUT",
        ),
        (
            "a variable of the wrong type",
            SUBSCRIPTION,
            {"variables": {"after": 5}},
            "BAD_USER_INPUT",
        ),
        (
            "a missing required variable",
            "subscription($r: ID!) { recordStatusChanged(recordId: $r) { sequence } }",
            None,
            "BAD_USER_INPUT",
        ),
        (
            "an id that is no id",
            SUBSCRIPTION,
            {"variables": {"recordId": "not-an-id"}},
            "BAD_USER_INPUT",
        ),
        (
            "a malformed afterSequence",
            SUBSCRIPTION,
            {"variables": {"after": "-1"}},
            "BAD_USER_INPUT",
        ),
        ("too many aliases", TOO_MANY_ALIASES, None, "QUERY_TOO_COMPLEX"),
        ("too deep a selection", TOO_DEEP, None, "QUERY_TOO_COMPLEX"),
        ("a query with a bad id", 'query { node(id: "nope") { id } }', None, "BAD_USER_INPUT"),
        (
            "a mutation with bad input",
            BAD_MUTATION,
            None,
            "BAD_USER_INPUT",
        ),
        (
            "a query the caller may not make",
            "query { providers { totalCount } }",
            None,
            "FORBIDDEN",
        ),
    ],
)
async def test_every_refused_operation_has_a_contract_code(
    api: Api,
    servers: list[Server],
    case: str,
    document: str,
    extra: dict[str, Any] | None,
    code: str,
) -> None:
    patient = api.token(subject="nobody-linked", groups=("patient",))
    token = patient if case == "a query the caller may not make" else api.token()
    async with connect(servers[0], token) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        payload = {"query": document, **(extra or {})}
        await subscriber.socket.send(
            json.dumps({"id": "op", "type": "subscribe", "payload": payload})
        )
        assert code in _codes(await _first_errors(subscriber, "op"))


@pytest.mark.parametrize("kind", ["no tenant", "no role", "an unlinked provider"])
async def test_a_subscriber_without_a_role_is_forbidden_with_a_code(
    api: Api, servers: list[Server], kind: str
) -> None:
    token = {
        "no tenant": api.token(tenant_id=None),
        "no role": api.token(groups=()),
        "an unlinked provider": api.token(subject="dr-nobody", groups=("provider",)),
    }[kind]
    async with connect(servers[1], token) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(PLAIN)
        assert _codes(await _first_errors(subscriber, operation)) == ["FORBIDDEN"]


async def test_one_operation_over_the_connection_limit_is_rate_limited(
    api: Api, servers: list[Server]
) -> None:
    """Strawberry refuses it itself (100 operations at once per connection)."""
    async with connect(servers[0], api.token()) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        for _ in range(100):
            await subscriber.subscribe(PLAIN)
        over = await subscriber.subscribe(PLAIN)
        assert _codes(await _first_errors(subscriber, over)) == ["RATE_LIMITED"]


@pytest.mark.parametrize(
    ("case", "messages", "close_code"),
    [
        (
            "an operation id in use",
            [{"id": "1", "type": "subscribe", "payload": {"query": PLAIN}}] * 2,
            4409,
        ),
        ("an unknown message type", [{"id": "1", "type": "nonsense"}], 4400),
        ("a second connection_init", [{"type": "connection_init", "payload": {}}], 4429),
    ],
)
async def test_protocol_refusals_close_the_socket_without_an_uncoded_error(
    api: Api,
    servers: list[Server],
    case: str,
    messages: list[dict[str, Any]],
    close_code: int,
) -> None:
    async with connect(servers[0], api.token()) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        for message in messages:
            await subscriber.socket.send(json.dumps(message))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _coded_messages_until_closed(subscriber)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == close_code


@pytest.mark.parametrize(("token", "close_code"), [(None, 4403), ("not-a-jwt", 4403)])
async def test_a_connection_without_a_good_token_is_closed_4403(
    servers: list[Server], token: str | None, close_code: int
) -> None:
    async with connect(servers[0], token) as subscriber:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await subscriber.next_message()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == close_code


async def test_a_subscribe_before_connection_init_is_closed_4401(servers: list[Server]) -> None:
    async with websockets.connect(
        servers[0].ws_url, subprotocols=[Subprotocol(PROTOCOL)]
    ) as socket_:
        await socket_.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PLAIN}})
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket_.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_a_strict_server_holds_websocket_operations_to_its_allow_list_and_rate_limit(
    api: Api, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    registered = "query Registered { me { subject } }"
    async with sessionmaker() as session, session.begin():
        await register(session, [registered])
    environment = server_environment(
        settings, MEDREC_PERSISTED_QUERIES_ONLY="true", MEDREC_RATE_LIMIT_PER_SUBJECT="2"
    )
    with serving(environment) as url:
        async with connect(Server.at(url), api.token(subject="ws-strict")) as subscriber:
            assert (await subscriber.next_message())["type"] == "connection_ack"
            for operation, document in (
                ("unregistered", "subscription { recordStatusChanged { status } }"),
                ("query", "{ me { subject } }"),
            ):
                await subscriber.socket.send(
                    json.dumps(
                        {"id": operation, "type": "subscribe", "payload": {"query": document}}
                    )
                )
                assert _codes(await _first_errors(subscriber, operation)) == ["FORBIDDEN"]
            # Both refusals took from the subject's two requests a minute: the next is limited.
            await subscriber.socket.send(
                json.dumps({"id": "third", "type": "subscribe", "payload": {"query": registered}})
            )
            assert _codes(await _first_errors(subscriber, "third")) == ["RATE_LIMITED"]
        async with connect(Server.at(url), api.token(subject="ws-allowed")) as subscriber:
            assert (await subscriber.next_message())["type"] == "connection_ack"
            await subscriber.socket.send(
                json.dumps({"id": "ok", "type": "subscribe", "payload": {"query": registered}})
            )
            answer = await subscriber.next_message()
            assert answer["type"] == "next", answer
            assert answer["payload"]["data"] == {"me": {"subject": "ws-allowed"}}, answer
