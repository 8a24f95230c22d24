"""A connection pool that counts the checkouts that had to wait, for /metrics.

SQLAlchemy signals no event when a checkout waits for a connection to be given back, and none
when it gives up: ``_do_get``, the hook SQLAlchemy's pool classes implement, is the one place
where both happen, so this module overrides it (the only private name of SQLAlchemy's in use).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import AsyncAdaptedQueuePool

if TYPE_CHECKING:
    from sqlalchemy.pool import ConnectionPoolEntry


class WaitCountingPool(AsyncAdaptedQueuePool):
    def __init__(self, creator: Any, *, max_overflow: int = 10, **kwargs: Any) -> None:
        super().__init__(creator, max_overflow=max_overflow, **kwargs)
        self._most = max_overflow
        # Checkouts that found every connection in use, the seconds they waited, and how many
        # gave up (the request then fails with "database unavailable").
        self.waits = 0
        self.waited_seconds = 0.0
        self.timeouts = 0

    def _do_get(self) -> ConnectionPoolEntry:
        if self.checkedin() > 0 or self.overflow() < self._most:
            return super()._do_get()  # an idle connection, or room to open one
        started = time.perf_counter()
        try:
            return super()._do_get()
        except PoolTimeout:
            self.timeouts += 1
            raise
        finally:
            self.waits += 1
            self.waited_seconds += time.perf_counter() - started
