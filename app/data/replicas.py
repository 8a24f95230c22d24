"""Hot-standby replicas that serve queries, and which of them may serve a given request.

A monitor samples the primary's WAL position and each replica's replayed position every
``interval`` seconds. A replica may serve a request when it answered the last sample, is not more
than ``max_lag`` seconds behind (it has replayed what the primary had written that long ago),
and has replayed past the request's consistency position, if it sent one; else the primary
serves it. The replicas that may are taken in turn. Positions are PostgreSQL LSNs as integers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

from app.data.database import create_engine
from app.data.request_reads import autocommit_engine
from app.domain.errors import DATABASE_OUTAGES

if TYPE_CHECKING:
    import asyncpg
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.settings import Settings

log = logging.getLogger("medrec.replicas")

# The primary's position: its WAL written so far. A replica's: what it has replayed, null
# unless it is a standby in recovery (a promoted replica is no longer one to read from).
_PRIMARY_POSITION_SQL = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
PRIMARY_POSITION = text(_PRIMARY_POSITION_SQL)
REPLAYED_POSITION = text(
    "SELECT CASE WHEN pg_is_in_recovery() "
    "THEN (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint END"
)


async def written_position(connection: asyncpg.Connection) -> int:
    """The primary's position now (``connection`` is the primary's): after a commit, at or past
    its commit record."""
    position: int = await connection.fetchval(_PRIMARY_POSITION_SQL)
    return position


@dataclass(eq=False, slots=True)
class Replica:
    # For logs and metrics: "replica 1", in the order of MEDREC_DATABASE_READ_URLS (a URL may
    # hold a password).
    name: str
    # Autocommit, as the primary's reads (app/data/request_reads.py).
    engine: AsyncEngine
    # None while it is down, or not yet sampled.
    replayed: int | None = None


class Replicas:
    def __init__(self, settings: Settings, primary: AsyncEngine, *, interval: float = 1.0) -> None:
        self._primary = primary
        self._max_lag = settings.replica_max_lag_seconds
        self._interval = interval
        self._timeout = max(interval, 2.0)
        self.members = [
            Replica(f"replica {number}", autocommit_engine(create_engine(settings, url)))
            for number, url in enumerate(settings.database_read_urls, start=1)
        ]
        self._turns = itertools.cycle(self.members)
        # (monotonic time, primary position) of the samples of the last max_lag seconds and one
        # older, so the position max_lag ago is always known once the monitor has run that long.
        self._history: deque[tuple[float, int]] = deque()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._monitor(), name="medrec-replica-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self.members:
            await replica.engine.dispose()

    def choose(self, after: int | None) -> Replica | None:
        """A replica that may serve a request that must see position ``after``, or None (the
        primary serves it)."""
        floor = self._lag_floor()
        if floor is None:
            return None
        if after is not None:
            floor = max(floor, after)
        for _ in range(len(self.members)):
            replica = next(self._turns)
            if replica.replayed is not None and replica.replayed >= floor:
                return replica
        return None

    def down(self, replica: Replica) -> None:
        """``replica`` refused a connection: no request goes to it until it answers a sample."""
        if replica.replayed is not None:
            log.warning("%s is unreachable: reading from the primary", replica.name)
        replica.replayed = None

    def _lag_floor(self) -> int | None:
        """The primary's position max_lag seconds ago, or None before the first sample."""
        if not self._history:
            return None
        cutoff = time.monotonic() - self._max_lag
        # The newest sample at least max_lag old; without one that old yet, the oldest sample,
        # which asks for more.
        floor = self._history[0][1]
        for moment, position in self._history:
            if moment > cutoff:
                break
            floor = position
        return floor

    async def sample(self) -> None:
        """One round of the monitor: the primary's position, then each replica's."""
        try:
            async with asyncio.timeout(self._timeout), self._primary.connect() as connection:
                position = await connection.scalar(PRIMARY_POSITION)
        except DATABASE_OUTAGES as error:
            # Without the primary's position no lag can be known: read from the primary (whose
            # own failure the request will meet in any case).
            log.warning("replica lag not measured: %s", type(error).__name__)
            self._history.clear()
            return
        now = time.monotonic()
        self._history.append((now, int(position)))
        while len(self._history) > 1 and self._history[1][0] <= now - self._max_lag:
            self._history.popleft()
        for replica in self.members:
            await self._sample(replica)

    async def _sample(self, replica: Replica) -> None:
        try:
            # A replica that does not answer at all must not hold up the others' samples.
            async with asyncio.timeout(self._timeout), replica.engine.connect() as connection:
                replayed = await connection.scalar(REPLAYED_POSITION)
        except DATABASE_OUTAGES as error:
            if replica.replayed is not None:
                log.warning("%s is down: %s", replica.name, type(error).__name__)
            replica.replayed = None
            return
        if replayed is None and replica.replayed is not None:
            log.warning("%s is not a standby in recovery: not read from", replica.name)
        replica.replayed = None if replayed is None else int(replayed)

    async def _monitor(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._interval)
