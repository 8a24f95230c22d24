"""Real uvicorn servers for WebSocket tests: two `medrec serve` processes on one database."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from app.settings import Settings

PROTOCOL = "graphql-transport-ws"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    http_url: str
    ws_url: str


def _environment(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "MEDREC_DATABASE_URL": settings.database_url,
        "MEDREC_COGNITO_REGION": settings.cognito_region,
        "MEDREC_COGNITO_USER_POOL_ID": settings.cognito_user_pool_id,
        "MEDREC_COGNITO_CLIENT_IDS": ",".join(settings.cognito_client_ids),
        "MEDREC_COGNITO_JWKS_URL": settings.jwks_url,
        "MEDREC_S3_BUCKET": settings.s3_bucket,
        "MEDREC_S3_REGION": settings.s3_region,
        "MEDREC_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "MEDREC_WS_ALLOWED_ORIGINS": "https://clinic.example",
    }


@pytest.fixture(scope="session")
def servers(settings: Settings) -> Iterator[list[Server]]:
    """Two server processes: a change made through one must reach subscribers of the other."""
    processes = []
    found = []
    for _ in range(2):
        port = _free_port()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "1"],
                env=_environment(settings),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        found.append(Server(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/graphql"))
    try:
        for server, process in zip(found, processes, strict=True):
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, "medrec serve exited"
                try:
                    if httpx.get(f"{server.http_url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "medrec serve did not become ready"
                time.sleep(0.2)
        yield found
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


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
