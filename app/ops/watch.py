"""``medrec watch``: prints record-status events as JSON lines, resuming after dropped connections.

A small client of the same ``graphql-transport-ws`` protocol the dashboards use; it passes the last
sequence it printed as ``afterSequence`` when it reconnects, so it misses nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import websockets

SUBSCRIPTION = """subscription Watch($recordId: ID, $patientId: ID, $after: String) {
  recordStatusChanged(recordId: $recordId, patientId: $patientId, afterSequence: $after) {
    sequence previousStatus status changedAt changedBy reason record { id } } }"""

# Closes that retrying cannot fix: a refused token (4403), an expired one (4401).
FINAL_CLOSE_CODES = {4401, 4403}


async def watch(
    url: str,
    token: str,
    *,
    record_id: str | None = None,
    patient_id: str | None = None,
    after: str | None = None,
) -> int:
    while True:
        try:
            async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
                after = await _stream(socket, token, record_id, patient_id, after)
                return 0
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            if code in FINAL_CLOSE_CODES:
                reason = closed.rcvd.reason if closed.rcvd else ""
                print(f"medrec watch: closed by the server ({code} {reason})", file=sys.stderr)
                return 1
        except OSError as error:
            print(f"medrec watch: {error}; retrying", file=sys.stderr)
        await asyncio.sleep(1)


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
