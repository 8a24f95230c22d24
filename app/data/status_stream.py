"""Record-status changes, fanned out to this process's subscribers through PostgreSQL.

One connection per process runs ``LISTEN``; a writer's ``NOTIFY`` (sent inside its transaction, so
only committed changes ring) wakes the subscribers of that tenant. The notification is a doorbell,
not the data: each subscriber then reads the events after the last one it delivered, under its own
access predicate, so nothing is lost across reconnects and a slow subscriber holds no backlog in
memory. Writers of one tenant take a transaction lock before appending an event, so a tenant's
sequence numbers become visible in order and "after N" never skips a late commit. Subscribers
who would read the same rows share those reads (app/data/status_fanout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.domain.record_workflow import STATUS_CHANNEL

log = logging.getLogger("medrec.status_stream")

LISTENER_APPLICATION_NAME = "medrec-status-listener"


class Doorbell:
    """Rings when the subscriber's tenant may have new events; rings coalesce.

    A flag and, while the subscriber waits, a future: an ``asyncio.Event`` would keep a deque
    (600 bytes) for every idle subscription."""

    __slots__ = ("_rung", "_waiter", "tenant_id")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._rung = False
        self._waiter: asyncio.Future[None] | None = None

    def ring(self) -> None:
        self._rung = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self) -> None:
        if not self._rung:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._rung = False


class StatusStream:
    def __init__(self, database_url: str, *, reconnect_delay: float = 1.0) -> None:
        self._dsn = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._reconnect_delay = reconnect_delay
        self._doorbells: dict[str, set[Doorbell]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def subscriber_count(self) -> int:
        return sum(len(bells) for bells in self._doorbells.values())

    def subscribe(self, tenant_id: str) -> Doorbell:
        bell = Doorbell(tenant_id)
        self._doorbells[tenant_id].add(bell)
        return bell

    def unsubscribe(self, bell: Doorbell) -> None:
        bells = self._doorbells.get(bell.tenant_id)
        if bells is not None:
            bells.discard(bell)
            if not bells:
                del self._doorbells[bell.tenant_id]

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="medrec-status-stream")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            tenant_id = json.loads(payload)["tenant"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed status notification")
            return
        for bell in self._doorbells.get(tenant_id, ()):
            bell.ring()

    def _ring_everyone(self) -> None:
        for bells in self._doorbells.values():
            for bell in bells:
                bell.ring()

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen_once()
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("status stream: database unreachable (%s)", type(error).__name__)
            finally:
                self.connected.clear()
            await asyncio.sleep(self._reconnect_delay)

    async def _listen_once(self) -> None:
        """Listens until the connection dies."""
        lost = asyncio.Event()
        # Named, so operators (and tests) can tell it in pg_stat_activity once it has probed.
        connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": LISTENER_APPLICATION_NAME}
        )
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(STATUS_CHANNEL, self._on_notify)
            self.connected.set()
            # Whatever committed while no one listened is read now by every subscriber.
            self._ring_everyone()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=10)
                    return
                # A connection that died silently (a dropped network path) fails this probe.
                await connection.execute("SELECT 1")
        finally:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
