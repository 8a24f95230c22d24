"""The doorbell a subscriber waits on (app/data/status_stream.py): rings coalesce and are not
lost."""

from __future__ import annotations

import asyncio

import pytest

from app.data.status_stream import Doorbell


async def test_a_ring_before_the_wait_is_not_lost_and_rings_coalesce() -> None:
    bell = Doorbell("t1")
    bell.ring()
    bell.ring()
    await asyncio.wait_for(bell.wait(), timeout=1)
    # Both rings were answered by that one wake-up: the next wait waits.
    waiting = asyncio.create_task(bell.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    bell.ring()
    await asyncio.wait_for(waiting, timeout=1)


async def test_a_cancelled_wait_leaves_the_bell_usable() -> None:
    bell = Doorbell("t1")
    waiting = asyncio.create_task(bell.wait())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    bell.ring()
    await asyncio.wait_for(bell.wait(), timeout=1)
