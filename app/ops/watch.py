"""``medrec watch``: prints record-status events as JSON lines, resuming after dropped connections.

A small client of the same ``graphql-transport-ws`` protocol the dashboards use; it passes the last
sequence it printed as ``afterSequence`` when it reconnects, so it misses nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from datetime import UTC, datetime
from typing import Any

import websockets

SUBSCRIPTION = """subscription Watch($recordId: ID, $patientId: ID, $after: String) {
  recordStatusChanged(recordId: $recordId, patientId: $patientId, afterSequence: $after) {
    sequence previousStatus status changedAt changedBy reason record { id } } }"""

# Closes that retrying cannot fix: a refused token (4403), an expired one (4401).
FINAL_CLOSE_CODES = {4401, 4403}
# Connection attempts before giving up on a server that never answered (a wrong --url, a server
# not started); once connected, `watch` reconnects for as long as it runs.
FIRST_CONNECT_ATTEMPTS = 5


async def watch(
    url: str,
    token: str,
    *,
    record_id: str | None = None,
    patient_id: str | None = None,
    after: str | None = None,
    retry_seconds: float = 1.0,
) -> int:
    token = bare_token(token)
    connected = False
    failures = 0
    while True:
        try:
            async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
                connected = True
                after = await _stream(socket, token, record_id, patient_id, after)
                return 0
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            if code in FINAL_CLOSE_CODES:
                reason = closed.rcvd.reason if closed.rcvd else ""
                print(f"medrec watch: closed by the server ({code} {reason})", file=sys.stderr)
                print(f"medrec watch: {token_problem(token, code)}", file=sys.stderr)
                return 1
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as error:
            failures += 1
            if not connected and (
                failures >= FIRST_CONNECT_ATTEMPTS or isinstance(error, websockets.InvalidURI)
            ):
                print(
                    f"medrec watch: cannot reach a medrec server at {url} ({error}); check --url "
                    "(ws://HOST:PORT/graphql) and that the server is running",
                    file=sys.stderr,
                )
                return 1
            print(f"medrec watch: {error}; retrying", file=sys.stderr)
        await asyncio.sleep(retry_seconds)


def bare_token(token: str) -> str:
    """The token as ``medrec dev`` prints it in a header ("Bearer ...") or on its own."""
    token = token.strip()
    scheme, _, rest = token.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest else token


def token_problem(token: str, code: int | None) -> str:
    """Why the server refused ``token``, as far as the client can tell without the key: the
    server's close says only that it did."""
    expires = _unverified_expiry(token)
    now = datetime.now(UTC)
    if code == 4401 or (expires is not None and expires <= now):
        when = "" if expires is None else f" at {expires.isoformat(timespec='seconds')}"
        return f"the token expired{when}; get a new one (medrec dev prints fresh tokens)"
    if expires is None:
        return "the token is not a JWT; pass the token itself, with or without 'Bearer '"
    return (
        "the server refused the token: signed by a key it does not trust, or for another "
        "issuer, audience or tenant; use a token of this server's user pool"
    )


def _unverified_expiry(token: str) -> datetime | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(float(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError, OverflowError):
        return None


async def _stream(
    socket: Any, token: str, record_id: str | None, patient_id: str | None, after: str | None
) -> str | None:
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    variables = {"recordId": record_id, "patientId": patient_id, "after": after}
    await socket.send(
        json.dumps(
            {
                "id": "watch",
                "type": "subscribe",
                "payload": {"query": SUBSCRIPTION, "variables": variables},
            }
        )
    )
    async for raw in socket:
        message = json.loads(raw)
        if message["type"] == "ping":
            await socket.send(json.dumps({"type": "pong"}))
        elif message["type"] == "next":
            payload = message["payload"]
            if payload.get("errors"):
                print(json.dumps(payload["errors"]), file=sys.stderr)
                continue
            event = payload["data"]["recordStatusChanged"]
            after = event["sequence"]
            print(json.dumps(event), flush=True)
        elif message["type"] == "error":
            print(json.dumps(message["payload"]), file=sys.stderr)
            return after
        elif message["type"] == "complete":
            # The server ends a subscription when the token expires, then closes the socket
            # (4401); keep reading so that close is seen and reported.
            continue
    return after
