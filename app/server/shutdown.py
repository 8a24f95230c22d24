"""Graceful shutdown: subscribers are told to go elsewhere before the process stops.

uvicorn drains HTTP requests on SIGTERM by itself, but it drops WebSockets with 1012 and no
reason. A worker's WebSockets are closed here first with 1001 ("going away"), so clients
reconnect to another instance at once and resume with `afterSequence`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import FrameType

    from starlette.types import Send

log = logging.getLogger(__name__)

GOING_AWAY = 1001
GOING_AWAY_REASON = "server shutting down"

_SIGNALS = (signal.SIGTERM, signal.SIGINT)

SignalHandler = Callable[[int, "FrameType | None"], Any]


class OpenSockets:
    """The accepted WebSockets of one process, by the ASGI `send` that closes each."""

    def __init__(self) -> None:
        self._sockets: set[Send] = set()
        self._closer: asyncio.Task[None] | None = None

    @contextmanager
    def tracking(self, send: Send) -> Iterator[None]:
        """Counts the socket of `send` as open until the connection's handler returns."""
        self._sockets.add(send)
        try:
            yield
        finally:
            self._sockets.discard(send)

    def go_away(self, then: Callable[[], object]) -> None:
        """Closes every open socket with 1001, then calls ``then``; on the event loop.

        A second call (a second signal) calls ``then`` at once: it may be a forced exit.
        """
        if self._closer is not None:
            then()
            return
        self._closer = asyncio.get_running_loop().create_task(self._close_all(then))

    async def _close_all(self, then: Callable[[], object]) -> None:
        try:
            if self._sockets:
                log.info("closing %d WebSocket(s): going away", len(self._sockets))
            await asyncio.gather(*(self._close(send) for send in list(self._sockets)))
        finally:
            then()

    @staticmethod
    async def _close(send: Send) -> None:
        # A socket still in its handshake, or already closed, has nothing to be told.
        with suppress(Exception):
            await send({"type": "websocket.close", "code": GOING_AWAY, "reason": GOING_AWAY_REASON})


def _is_uvicorn_exit_handler(handler: object) -> bool:
    import uvicorn

    return isinstance(getattr(handler, "__self__", None), uvicorn.Server)


@contextmanager
def closing_sockets_on_exit_signal(sockets: OpenSockets) -> Iterator[None]:
    """While uvicorn serves, SIGTERM/SIGINT first close `sockets` with 1001, and only then reach
    uvicorn's own handler, which starts its shutdown (and would drop them with 1012). Elsewhere
    (in-process tests) the handlers are left alone.
    """
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, SignalHandler] = {}
    for sig in _SIGNALS:
        handler = signal.getsignal(sig)
        if not _is_uvicorn_exit_handler(handler):
            continue
        assert callable(handler)

        def on_signal(
            number: int, frame: FrameType | None, handler: SignalHandler = handler
        ) -> None:
            loop.call_soon_threadsafe(sockets.go_away, partial(handler, number, None))

        previous[sig] = handler
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
