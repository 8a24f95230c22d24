"""Token buckets refill at the configured rate and say how long to wait."""

from __future__ import annotations

from app.server.rate_limit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_buckets_refill_and_report_the_wait() -> None:
    clock = Clock()
    buckets = TokenBuckets(60, clock=clock)  # one a second, 60 at once
    assert all(buckets.take("a") is None for _ in range(60))
    wait = buckets.take("a")
    assert wait is not None
    assert 0.99 <= wait <= 1.0
    assert buckets.take("b") is None  # another caller has its own bucket
    clock.now += 1.0
    assert buckets.take("a") is None
    assert buckets.take("a") is not None
    clock.now += 3600
    assert all(buckets.take("a") is None for _ in range(60))  # full again, never beyond
    assert buckets.take("a") is not None
