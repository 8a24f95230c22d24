"""Shape 5: subscription fan-out over graphql-transport-ws, two `medrec serve` processes.

Subscribers (half on each process) listen to every status change of tenant t1; a writer moves
records made beforehand from DRAFT to ENTERED_IN_ERROR at a steady pace through the first
process. Latency runs from the event's own ``changedAt`` (set in the writer's transaction) to
arrival at each subscriber; the JSON also has it from the moment the writer's HTTP response came
back. Memory per idle subscription is the servers' RSS with every subscriber connected and idle,
minus their RSS before, divided by the number of subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import websockets

from bench.database import StatementCounter
from bench.loadgen import Result
from bench.servers import RssSampler, tree_rss_bytes
from bench.shapes import CHANGE_STATUS, CREATE_RECORD, SUBSCRIPTION, WRITE_VISIT_DATE, body

CONNECT_CONCURRENCY = 50
SETTLE_SECONDS = 5.0
DRAIN_TIMEOUT = 60.0


@dataclass
class Deliveries:
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)  # (time, changedAt, id)
    errors: list[str] = field(default_factory=list)
    subscribed: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self) -> None:
        self.progress.set()

    async def wait_until(self, done: Callable[[], bool], seconds: float) -> None:
        """Until ``done()`` holds after some change, or ``seconds`` have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not done():
                    await self.progress.wait()
                    self.progress.clear()


async def _subscriber(
    url: str, token: str, sink: Deliveries, ready: asyncio.Semaphore, stop: asyncio.Event
) -> None:
    try:
        async with ready:
            connection = await websockets.connect(
                url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], max_size=None
            )
            await connection.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                )
            )
            ack = json.loads(await connection.recv())
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            await connection.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
            )
            sink.subscribed += 1
            sink.changed()
        async with connection:
            receiving = asyncio.ensure_future(_receive(connection, sink))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (receiving, stopping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    except Exception as error:  # a failed subscriber is counted, not fatal
        sink.errors.append(f"{type(error).__name__}: {error}"[:200])
        sink.changed()


async def _receive(connection: Any, sink: Deliveries) -> None:
    async for raw in connection:
        arrived = time.time()
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "ping":
            await connection.send(json.dumps({"type": "pong"}))
        elif kind == "next":
            payload = message.get("payload") or {}
            event = (payload.get("data") or {}).get("recordStatusChanged")
            if payload.get("errors") or not event:
                sink.errors.append(json.dumps(payload)[:400])
            else:
                sink.arrivals.append((arrived, event["changedAt"], event["record"]["id"]))
                sink.changed()
        elif kind in ("error", "complete"):
            sink.errors.append(json.dumps(message)[:400])
            return


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _create_drafts(
    client: httpx.AsyncClient, url: str, token: str, targets: list[tuple[str, str]]
) -> list[str]:
    ids = []
    for patient, provider in targets:
        answer = (
            await client.post(
                url,
                content=body(
                    CREATE_RECORD,
                    {
                        "input": {
                            "patientId": patient,
                            "providerId": provider,
                            "recordType": "FOLLOW_UP",
                            "visitDate": WRITE_VISIT_DATE,
                        }
                    },
                ),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        ).json()
        if answer.get("errors"):
            raise RuntimeError(f"createRecord failed: {answer['errors']}")
        ids.append(answer["data"]["createRecord"]["record"]["id"])
    return ids


async def run_fanout(
    *,
    http_urls: list[str],
    ws_urls: list[str],
    token: str,
    server_pids: list[int],
    counter: StatementCounter,
    subscribers: int,
    seconds: float,
    interval: float,
    targets: list[tuple[str, str]],
) -> tuple[Result, dict[str, Any]]:
    changes = max(1, int(seconds / interval))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=60) as client:
        drafts = await _create_drafts(
            client, http_urls[0], token, [targets[i % len(targets)] for i in range(changes)]
        )

        # Warm each process's subscription path, then take the baseline without subscribers.
        warm_sink, warm_stop = Deliveries(), asyncio.Event()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        warm = [
            asyncio.create_task(_subscriber(ws_urls[i % 2], token, warm_sink, gate, warm_stop))
            for i in range(20)
        ]
        await asyncio.sleep(2)
        warm_stop.set()
        await asyncio.gather(*warm)
        await asyncio.sleep(2)
        rss_before = tree_rss_bytes(server_pids)

        sink, stop = Deliveries(), asyncio.Event()
        started = time.monotonic()
        tasks = [
            asyncio.create_task(_subscriber(ws_urls[i % len(ws_urls)], token, sink, gate, stop))
            for i in range(subscribers)
        ]
        await sink.wait_until(lambda: sink.subscribed + len(sink.errors) >= subscribers, 120)
        connect_seconds = time.monotonic() - started
        await asyncio.sleep(SETTLE_SECONDS)
        rss_idle = tree_rss_bytes(server_pids)

        await counter.reset()
        responded: dict[str, float] = {}
        with RssSampler(server_pids) as sampler:
            write_started = time.monotonic()
            for n, record_id in enumerate(drafts):
                await asyncio.sleep(max(0.0, write_started + n * interval - time.monotonic()))
                answer = (
                    await client.post(
                        http_urls[0],
                        content=body(
                            CHANGE_STATUS,
                            {
                                "input": {
                                    "id": record_id,
                                    "status": "ENTERED_IN_ERROR",
                                    "expectedVersion": 1,
                                    "reason": "benchmark fan-out",
                                }
                            },
                        ),
                        headers=headers,
                    )
                ).json()
                responded[record_id] = time.time()
                if answer.get("errors"):
                    sink.errors.append(json.dumps(answer["errors"])[:200])
            expected = len(drafts) * sink.subscribed
            await sink.wait_until(lambda: len(sink.arrivals) >= expected, DRAIN_TIMEOUT)
            elapsed = time.monotonic() - write_started
        totals = await counter.totals()
        stop.set()
        await asyncio.gather(*tasks)

    wanted = set(drafts)
    arrivals = [a for a in sink.arrivals if a[2] in wanted]
    from_commit = [
        (arrived - datetime.fromisoformat(changed).timestamp()) * 1000
        for arrived, changed, _ in arrivals
    ]
    from_response = [
        (arrived - responded[record]) * 1000
        for arrived, _, record in arrivals
        if record in responded
    ]
    missing = max(0, len(drafts) * subscribers - len(arrivals))
    per_subscription = (rss_idle - rss_before) / subscribers if subscribers else 0.0
    result = Result(
        shape="fanout",
        title=f"5 subscription fan-out ({subscribers} subscribers, per delivery)",
        server="medrec",
        requests=len(arrivals),
        seconds=elapsed,
        rps=len(arrivals) / elapsed if elapsed else 0.0,
        p50_ms=_percentile(from_commit, 0.5),
        p90_ms=_percentile(from_commit, 0.9),
        p99_ms=_percentile(from_commit, 0.99),
        errors=missing + len(sink.errors),
        error_detail={"missing_deliveries": missing, "error_messages": len(sink.errors)},
        error_sample=sink.errors[0] if sink.errors else "",
        rss_peak_bytes=sampler.peak,
        rss_end_bytes=sampler.last,
        sql_per_request=None if totals is None or not arrivals else totals[0] / len(arrivals),
        queries_per_request=None if totals is None or not arrivals else totals[1] / len(arrivals),
        sql_per_request_sequential=None,
        queries_per_request_sequential=None,
        bytes_per_response=None,
        notes=(
            f"{len(drafts)} status changes, one every {interval:g} s; latency from changedAt; "
            f"{per_subscription / 1024:.1f} KiB RSS per idle subscription"
        ),
    )
    extra = {
        "subscribers": subscribers,
        "subscribed": sink.subscribed,
        "connect_seconds": connect_seconds,
        "status_changes": len(drafts),
        "interval_seconds": interval,
        "rss_before_bytes": rss_before,
        "rss_idle_bytes": rss_idle,
        "rss_per_idle_subscription_bytes": per_subscription,
        "latency_from_response_ms": {
            "p50": _percentile(from_response, 0.5),
            "p99": _percentile(from_response, 0.99),
            "mean": statistics.fmean(from_response) if from_response else None,
        },
        "latency_from_commit_mean_ms": statistics.fmean(from_commit) if from_commit else None,
        "error_messages": sink.errors[:20],
    }
    return result, extra
