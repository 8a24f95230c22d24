"""Real uvicorn servers for WebSocket tests: two `medrec serve` processes on one database."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import websockets

from app.settings import Settings
from tests.servers import server_environment, serving

PROTOCOL = "graphql-transport-ws"


@dataclass(frozen=True)
class Server:
    http_url: str
    ws_url: str

    @classmethod
    def at(cls, http_url: str) -> Server:
        """The server at ``http_url`` (a `serving` URL), with its GraphQL WebSocket address."""
        return cls(http_url, http_url.replace("http://", "ws://", 1) + "/graphql")


@pytest.fixture(scope="session")
def servers(settings: Settings) -> Iterator[list[Server]]:
    """Two server processes: a change made through one must reach subscribers of the other."""
    environment = server_environment(settings, MEDREC_WS_ALLOWED_ORIGINS="https://clinic.example")
    with serving(environment) as first, serving(environment) as second:
        yield [Server.at(url) for url in (first, second)]


class Subscriber:
    def __init__(self, socket_: Any) -> None:
        self.socket = socket_

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        operation = f"op-{id(query)}-{time.monotonic_ns()}"
        payload: dict[str, Any] = {"query": query}
        if variables:
            payload["variables"] = variables
        await self.socket.send(
            json.dumps({"id": operation, "type": "subscribe", "payload": payload})
        )
        return operation

    async def next_message(self, wait: float = 10.0) -> dict[str, Any]:
        """The next message other than a ping; fails after ``wait`` seconds of silence."""
        while True:
            async with asyncio.timeout(wait):
                raw = await self.socket.recv()
            # graphql-transport-ws messages are text frames; browsers' clients ignore binary ones.
            assert isinstance(raw, str), "a binary frame"
            message: dict[str, Any] = json.loads(raw)
            if message["type"] == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
                continue
            return message


@asynccontextmanager
async def connect(server: Server, token: str | None, **extra: Any) -> AsyncIterator[Subscriber]:
    async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL], **extra) as socket_:  # type: ignore[list-item]
        payload = {} if token is None else {"Authorization": f"Bearer {token}"}
        await socket_.send(json.dumps({"type": "connection_init", "payload": payload}))
        subscriber = Subscriber(socket_)
        yield subscriber
