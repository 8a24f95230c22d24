"""Headless Chromium, driven over the DevTools protocol with `websockets` (no Selenium, no browser
downloads): the Debian package's /usr/bin/chromium is the browser."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

CHROMIUM = "/usr/bin/chromium"

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class CDPError(Exception):
    pass


@dataclass(frozen=True)
class Browser:
    page_ws_url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def chromium(executable: str = CHROMIUM, timeout: float = 30) -> Iterator[Browser]:
    """A fresh headless Chromium with a throw-away profile; its first tab's DevTools URL."""
    with tempfile.TemporaryDirectory(
        prefix="medrec-chromium-", ignore_cleanup_errors=True
    ) as scratch:
        profile = Path(scratch) / "profile"
        log = Path(scratch) / "chromium.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [executable, *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            # Chromium writes the port it chose (port 0 above) into the profile directory.
            active_port = profile / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (active_port.exists() and active_port.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise CDPError(f"Chromium did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.1)
            port = int(active_port.read_text().split()[0])
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(target for target in targets if target["type"] == "page")
            yield Browser(page["webSocketDebuggerUrl"], log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class Page:
    """One tab: commands, and every event it has sent so far (in order)."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._connection:
                message: dict[str, Any] = json.loads(raw)
                if "id" not in message:
                    self.events.append((message["method"], message.get("params", {})))
                    continue
                future = self._pending.pop(message["id"], None)
                if future is None or future.done():
                    continue
                if "error" in message:
                    future.set_exception(CDPError(json.dumps(message["error"])))
                else:
                    future.set_result(message.get("result", {}))
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CDPError("the DevTools connection closed"))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self._connection.send(
            json.dumps({"id": command_id, "method": method, "params": params})
        )
        async with asyncio.timeout(30):
            return await future

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CDPError(json.dumps(result["exceptionDetails"]))
        return result["result"].get("value")

    async def wait_until(self, expression: str, seconds: float = 20, what: str = "") -> Any:
        """Polls a JavaScript expression until it is truthy, for up to ``seconds``; its value."""
        deadline = time.monotonic() + seconds
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or expression}; last: {value!r}")
            await asyncio.sleep(0.1)

    def named(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.events if name == method]

    async def wait_for_event(
        self,
        method: str,
        matches: Callable[[dict[str, Any]], bool] = lambda _: True,
        seconds: float = 20,
    ) -> dict[str, Any]:
        """The first event ``method`` that ``matches``, waiting up to ``seconds`` for it."""
        deadline = time.monotonic() + seconds
        while True:
            for params in self.named(method):
                if matches(params):
                    return params
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for the DevTools event {method}")
            await asyncio.sleep(0.05)
