"""wrk runs with the Lua scripts of bench/lua, and one measured shape: RSS, statements, latency."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.database import BENCH_DIR, StatementCounter
from bench.servers import RssSampler, cpu_spent, tree_cpu_seconds
from bench.shapes import Shape

LUA_DIR = BENCH_DIR / "lua"
WRK_TIMEOUT = "30s"
PROBE_REQUESTS = 10


@dataclass
class Result:
    shape: str
    title: str
    server: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    errors: int
    error_detail: dict[str, int]
    error_sample: str
    rss_peak_bytes: int
    rss_end_bytes: int
    # Under load: every statement (BEGIN/COMMIT/ROLLBACK too) / requests the server handled
    # (those wrk completed, plus one in flight per connection when it stopped).
    sql_per_request: float | None
    queries_per_request: float | None  # the same without transaction control and SET
    # Exact: from requests sent one at a time before the load.
    sql_per_request_sequential: float | None
    queries_per_request_sequential: float | None
    bytes_per_response: float | None
    # CPU per request handled under load, of the server's processes and of PostgreSQL's.
    server_cpu_us: float | None = None
    postgres_cpu_us: float | None = None
    # PostgreSQL's time per query under load (pg_stat_statements: executing and planning).
    query_us: float | None = None
    # With BENCH_REPLICA: the standby's part of sql_per_request, queries_per_request and
    # postgres_cpu_us, which then count both servers (the primary's part is the rest).
    replica_sql_per_request: float | None = None
    replica_queries_per_request: float | None = None
    replica_cpu_us: float | None = None
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk (make bench does it)")
    return found


async def run_wrk(
    url: str,
    token: str | None,
    shape: Shape,
    *,
    seconds: float,
    connections: int,
    threads: int,
) -> dict[str, Any]:
    """One wrk run of ``shape``; returns the script's BENCH_RESULT object."""
    with tempfile.TemporaryDirectory(prefix="medrec-bench-") as tmp:
        bodies = Path(tmp) / "bodies.jsonl"
        bodies.write_text("\n".join(shape.bodies) + "\n")
        args = [str(bodies)]
        script = LUA_DIR / "bodies.lua"
        if shape.follow_up is not None:
            follow = Path(tmp) / "follow.jsonl"
            follow.write_text(shape.follow_up + "\n")
            args.append(str(follow))
            script = LUA_DIR / "chain.lua"
            threads = connections  # one connection per thread keeps each pair in order
        argv = [
            wrk_binary(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={WRK_TIMEOUT}",
            "--latency",
            "-s",
            str(script),
            url,
            "--",
            *args,
        ]
        env = {**os.environ, "BENCH_TOKEN": token or "", "BENCH_LUA_DIR": str(LUA_DIR)}
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    for line in text.splitlines():
        if line.startswith("BENCH_RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
            return result
    raise RuntimeError(f"wrk printed no result (exit {process.returncode}):\n{text}")


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _first_id(answer: dict[str, Any]) -> str:
    text = json.dumps(answer)
    marker = '"id": "'
    start = text.index(marker) + len(marker)
    return text[start : text.index('"', start)]


async def send_once(
    client: httpx.AsyncClient, url: str, token: str | None, shape: Shape, index: int = 0
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One request of the shape (and its follow-up); raises if an answer is wrong."""
    # As chain.lua does: a fresh key where the peer takes it from the client.
    first = shape.bodies[index % len(shape.bodies)].replace("__UUID__", str(uuid.uuid4()))
    answer: dict[str, Any] = (await client.post(url, content=first, headers=_headers(token))).json()
    if problem := shape.check(answer):
        raise RuntimeError(f"{shape.key}: unexpected answer: {problem}")
    if shape.follow_up is None:
        return answer, None
    follow_body = shape.follow_up.replace("__ID__", _first_id(answer))
    follow: dict[str, Any] = (
        await client.post(url, content=follow_body, headers=_headers(token))
    ).json()
    if follow.get("errors") or not follow.get("data"):
        raise RuntimeError(f"{shape.key}: follow-up failed: {json.dumps(follow)[:500]}")
    return answer, follow


async def measure(
    *,
    server: str,
    url: str,
    token: str | None,
    shape: Shape,
    rss_pids: list[int],
    postgres_pids: list[int],
    counter: StatementCounter,
    seconds: float,
    warmup: float,
    connections: int,
    threads: int,
) -> Result:
    # Sequential probe first: checks the answers and counts statements exactly.
    async with httpx.AsyncClient(timeout=60) as client:
        await send_once(client, url, token, shape)
        await counter.reset()
        sent = 0
        for index in range(PROBE_REQUESTS // (2 if shape.follow_up else 1)):
            _, follow = await send_once(client, url, token, shape, index)
            sent += 1 if follow is None else 2
        probe = await counter.totals()
    if warmup > 0:
        await run_wrk(url, token, shape, seconds=warmup, connections=connections, threads=threads)
    await counter.reset()
    # The standby's CPU is PostgreSQL's too, counted where the primary's is.
    replica_pids = counter.replica_pids if postgres_pids else []
    cpu_before = (
        tree_cpu_seconds(rss_pids),
        tree_cpu_seconds(postgres_pids),
        tree_cpu_seconds(replica_pids),
    )
    with RssSampler(rss_pids) as sampler:
        raw = await run_wrk(
            url, token, shape, seconds=seconds, connections=connections, threads=threads
        )
    requests = int(raw["requests"])
    # The requests in flight when wrk stopped (one per connection) still run to the end on the
    # server: wait for them, and count them as handled.
    await asyncio.sleep(min(60.0, max(2.0, 2 * raw["p99_us"] / 1e6)))
    server_cpu = cpu_spent(cpu_before[0], tree_cpu_seconds(rss_pids))
    postgres_cpu = cpu_spent(cpu_before[1], tree_cpu_seconds(postgres_pids))
    replica_cpu = cpu_spent(cpu_before[2], tree_cpu_seconds(replica_pids))
    split = await counter.split()
    totals = None if split is None else counter.combined(split)
    replica = None if split is None else split[1]
    handled = requests + connections if requests else 0
    duration = raw["duration_us"] / 1e6
    detail = {
        key: int(raw[key])
        for key in (
            "connect_errors",
            "read_errors",
            "write_errors",
            "timeouts",
            "status_errors",
            "graphql_errors",
        )
    }

    def per_request(value: int | None, count: int) -> float | None:
        return None if value is None or count == 0 else value / count

    return Result(
        shape=shape.key,
        title=shape.title,
        server=server,
        requests=requests,
        seconds=duration,
        rps=requests / duration if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000 if requests else None,
        p90_ms=raw["p90_us"] / 1000 if requests else None,
        p99_ms=raw["p99_us"] / 1000 if requests else None,
        errors=sum(detail.values()),
        error_detail=detail,
        error_sample=str(raw.get("error_sample", "")),
        rss_peak_bytes=sampler.peak,
        rss_end_bytes=sampler.last,
        sql_per_request=per_request(totals[0] if totals else None, handled),
        queries_per_request=per_request(totals[1] if totals else None, handled),
        sql_per_request_sequential=per_request(probe[0] if probe else None, sent),
        queries_per_request_sequential=per_request(probe[1] if probe else None, sent),
        bytes_per_response=raw["bytes"] / requests if requests else None,
        server_cpu_us=per_request(round(server_cpu * 1e6), handled),
        postgres_cpu_us=(
            per_request(round((postgres_cpu + replica_cpu) * 1e6), handled)
            if postgres_pids
            else None
        ),
        query_us=(
            None if not totals or not totals.queries else 1000 * totals.query_ms / totals.queries
        ),
        replica_sql_per_request=per_request(replica.everything if replica else None, handled),
        replica_queries_per_request=per_request(replica.queries if replica else None, handled),
        replica_cpu_us=per_request(round(replica_cpu * 1e6), handled) if replica_pids else None,
        notes=shape.notes,
    )
