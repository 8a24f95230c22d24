"""Checks on an HTTP request before any GraphQL work: cross-site request forgery, body size (and
the size of a WebSocket's messages), and the browser origins `medrec dev` lets in.

CSRF: a browser sends some requests cross-site without asking the server first (a "simple"
request: GET, or POST with a form or text/plain body). Refusing every such request that could run
an operation leaves a forging page nothing to send, as Apollo Server's CSRF prevention does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import Message, Receive, Send

# Any of these forces a browser to preflight, which a cross-site page cannot pass.
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")

# `medrec dev` only: pages of a frontend's dev server on this machine (Vite, Next.js), any port.
# Plain http, as browsers write an Origin (lowercase, no default port), matched whole: not
# `http://localhost.evil.example`. An https dev server is listed in MEDREC_CORS_ORIGINS instead.
LOOPBACK_ORIGIN_PATTERN = r"http://(?:localhost|127\.0\.0\.1)(?::[0-9]{1,5})?"
_LOOPBACK_ORIGIN = re.compile(LOOPBACK_ORIGIN_PATTERN)


def is_loopback_origin(origin: str) -> bool:
    """Whether ``origin`` is one of LOOPBACK_ORIGIN_PATTERN's, as CORSMiddleware matches it."""
    return _LOOPBACK_ORIGIN.fullmatch(origin) is not None


def csrf_refusal(request: Request) -> str | None:
    """Why the request must not run, or None."""
    if request.method == "POST":
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return "POST requests must have Content-Type: application/json"
        return None
    runs_an_operation = "query" in request.query_params or "extensions" in request.query_params
    preflighted = any(name in request.headers for name in PREFLIGHT_HEADERS)
    if request.method == "GET" and runs_an_operation and not preflighted:
        return (
            "GET operations need one of the headers "
            + ", ".join(PREFLIGHT_HEADERS)
            + " (any value), so that browsers must ask before sending them"
        )
    return None


class BodyTooLarge(Exception):
    pass


def limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises BodyTooLarge once more than ``limit`` body bytes arrived."""
    seen = 0

    async def receive_within_limit() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
        return message

    return receive_within_limit


# RFC 6455: "a message that is too big for it to process".
MESSAGE_TOO_BIG = 1009


def _message_bytes(message: Message) -> int:
    text: str | None = message.get("text")
    if text is None:
        return len(message.get("bytes") or b"")
    # ASCII text has as many bytes as characters; only other text is encoded to count them.
    return len(text) if text.isascii() else len(text.encode())


def limited_websocket(receive: Receive, send: Send, limit: int) -> tuple[Receive, Send]:
    """``receive`` and ``send`` of a WebSocket whose messages of more than ``limit`` bytes close
    it with 1009 before anyone parses them. The application sees the client disconnect; what it
    sends after the close is dropped."""
    closed = False

    async def receive_within_limit() -> Message:
        nonlocal closed
        message = await receive()
        if message["type"] == "websocket.receive" and _message_bytes(message) > limit:
            closed = True
            await send(
                {
                    "type": "websocket.close",
                    "code": MESSAGE_TOO_BIG,
                    "reason": f"messages are limited to {limit} bytes",
                }
            )
            return {"type": "websocket.disconnect", "code": MESSAGE_TOO_BIG}
        return message

    async def send_until_closed(message: Message) -> None:
        if not closed:
            await send(message)

    return receive_within_limit, send_until_closed
