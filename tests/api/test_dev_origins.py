"""Which browser origins may call the API (CORS) and open subscriptions (WebSocket handshakes):
`medrec dev` also lets in a frontend's dev server on this machine, `medrec serve` only what is
configured; both let through the headers GraphQL clients send (issue 23)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message

from app.server.main import create_app
from app.settings import Settings
from tests.api_client import Api

CLINIC = "https://clinic.example"
LOCAL_FRONTEND = "http://localhost:5173"
# What Apollo Client with client awareness sends, with a token and a read-your-writes token.
REQUESTED_HEADERS = "apollographql-client-name, content-type, authorization, x-medrec-consistency"
LOCAL_FRONTENDS = [LOCAL_FRONTEND, "http://127.0.0.1:3000", "http://localhost"]
# Look-alikes of a local frontend's origin: other hosts, other schemes, the IPv6 loopback (not
# listed), a sandboxed page's "null".
OTHERS = [
    "http://localhost.evil.example:3000",
    "http://localhost:3000.evil.example",
    "http://127.0.0.1.nip.io:3000",
    "http://evil.example",
    "http://sub.localhost:3000",
    "http://127.0.0.2:3000",
    "https://localhost:3000",
    "https://127.0.0.1:3000",
    "ws://localhost:3000",
    "http://[::1]:3000",
    "null",
]


@dataclass(frozen=True)
class Served:
    app: Starlette
    client: httpx.AsyncClient


@asynccontextmanager
async def _serving(app: Starlette) -> AsyncIterator[Served]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
            yield Served(app, client)


@pytest.fixture(scope="module")
async def dev(settings: Settings) -> AsyncIterator[Served]:
    """The app as `medrec dev` makes it, with origins configured as well."""
    configured = {"cors_origins": (CLINIC,), "ws_allowed_origins": (CLINIC,)}
    app = create_app(settings.model_copy(update=configured), allow_loopback_origins=True)
    async with _serving(app) as served:
        yield served


@pytest.fixture(scope="module")
async def serve_configured(settings: Settings) -> AsyncIterator[Served]:
    """The app as `medrec serve` makes it, with the local frontend's origin configured."""
    configured = {"cors_origins": (LOCAL_FRONTEND,), "ws_allowed_origins": (LOCAL_FRONTEND,)}
    async with _serving(create_app(settings.model_copy(update=configured))) as served:
        yield served


@pytest.fixture
def serve(app: Starlette, client: httpx.AsyncClient) -> Served:
    """The suite's app: `medrec serve`'s, with no origins configured."""
    return Served(app, client)


async def _preflight(served: Served, origin: str) -> httpx.Response:
    return await served.client.options(
        "/graphql",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": REQUESTED_HEADERS,
        },
    )


def _assert_allowed(preflight: httpx.Response, origin: str) -> None:
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == origin
    allowed = {
        h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")
    }
    assert {h.strip() for h in REQUESTED_HEADERS.split(",")} <= allowed
    assert "apollographql-client-version" in allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]


def _assert_refused(preflight: httpx.Response) -> None:
    assert preflight.status_code != 200
    assert "access-control-allow-origin" not in preflight.headers


async def _handshake(served: Served, origin: str) -> Message:
    """The app's answer to a browser's WebSocket handshake from ``origin``: `websocket.accept`, or
    `websocket.close` before accepting (the server's 403)."""
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"medrec.test"),
            (b"origin", origin.encode()),
            (b"sec-websocket-protocol", b"graphql-transport-ws"),
        ],
        "subprotocols": ["graphql-transport-ws"],
        "client": ("127.0.0.1", 40001),
        "server": ("medrec.test", 80),
        "state": {},
    }
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    async def send(message: Message) -> None:
        if not answer.done():
            answer.set_result(message)

    running = asyncio.create_task(served.app(scope, incoming.get, send))
    try:
        async with asyncio.timeout(10):
            return await answer
    finally:
        # The browser goes away: an accepted socket ends as it would waiting for connection_init.
        incoming.put_nowait({"type": "websocket.disconnect", "code": 1001})
        async with asyncio.timeout(10):
            await running


@pytest.mark.parametrize("origin", LOCAL_FRONTENDS)
async def test_dev_lets_a_local_frontend_call_and_subscribe(dev: Served, origin: str) -> None:
    _assert_allowed(await _preflight(dev, origin), origin)
    accepted = await _handshake(dev, origin)
    assert accepted["type"] == "websocket.accept", accepted
    assert accepted.get("subprotocol") == "graphql-transport-ws"


@pytest.mark.parametrize("origin", OTHERS)
async def test_dev_refuses_other_origins(dev: Served, origin: str) -> None:
    preflight = await _preflight(dev, origin)
    _assert_refused(preflight)
    assert preflight.text == "Disallowed CORS origin"  # only the origin: the headers are fine
    refused = await _handshake(dev, origin)
    assert refused["type"] == "websocket.close", refused


async def test_dev_keeps_the_configured_origins(dev: Served) -> None:
    _assert_allowed(await _preflight(dev, CLINIC), CLINIC)
    assert (await _handshake(dev, CLINIC))["type"] == "websocket.accept"


async def test_a_local_frontend_reads_the_exposed_headers_of_a_401(
    dev: Served,
) -> None:
    # Without a token, under graphql-response+json: a 401 whose challenge the page may read.
    answered = await dev.client.post(
        "/graphql",
        json={"query": "{ me { subject } }"},
        headers={
            "Origin": LOCAL_FRONTEND,
            "Accept": "application/graphql-response+json",
            "apollographql-client-name": "web",
        },
    )
    assert answered.status_code == 401, answered.text
    assert answered.headers["access-control-allow-origin"] == LOCAL_FRONTEND
    exposed = {h.strip() for h in answered.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"X-Request-ID", "Retry-After", "WWW-Authenticate"}
    assert answered.headers["www-authenticate"] == "Bearer"


async def test_serve_refuses_a_local_frontend_unless_configured(
    serve: Served, serve_configured: Served
) -> None:
    _assert_refused(await _preflight(serve, LOCAL_FRONTEND))
    assert (await _handshake(serve, LOCAL_FRONTEND))["type"] == "websocket.close"
    # Configured, the same preflight passes: the client headers are allowed in serve too.
    _assert_allowed(await _preflight(serve_configured, LOCAL_FRONTEND), LOCAL_FRONTEND)
    assert (await _handshake(serve_configured, LOCAL_FRONTEND))["type"] == "websocket.accept"
    # Only what is configured: no other port, let alone another local host.
    for other in ("http://localhost:3000", "http://127.0.0.1:5173"):
        _assert_refused(await _preflight(serve_configured, other))
        assert (await _handshake(serve_configured, other))["type"] == "websocket.close"


async def test_a_configured_origin_posts_with_the_client_headers(
    api: Api, serve_configured: Served
) -> None:
    answered = await serve_configured.client.post(
        "/graphql",
        json={"query": "{ me { subject } }"},
        headers={
            "Origin": LOCAL_FRONTEND,
            "Authorization": f"Bearer {api.token()}",
            "apollographql-client-name": "web",
            "apollographql-client-version": "1.0.0",
        },
    )
    assert answered.json()["data"] == {"me": {"subject": "admin-subject"}}
    assert answered.headers["access-control-allow-origin"] == LOCAL_FRONTEND
    assert "WWW-Authenticate" in answered.headers["access-control-expose-headers"]
