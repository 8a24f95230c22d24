"""``make bench`` / ``make bench-peers``: seed, serve as production does, load with wrk, report.

Settings come from the environment (see the README's Benchmarks section):
BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_WORKERS, BENCH_PATIENTS, BENCH_SHAPES,
BENCH_SUBSCRIBERS, BENCH_SUB_INTERVAL, BENCH_SOAK, BENCH_FLOOR, BENCH_AUDIT_ROWS, BENCH_REPLICA,
BENCH_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.database import (
    BENCH_DIR,
    DATA_DIR,
    TENANT,
    Database,
    StatementCounter,
    bench_database,
    prepare,
    sized_database,
)
from bench.fanout import run_fanout
from bench.loadgen import Result, measure
from bench.replica import REPLICA_DIR, Replica, bench_replica
from bench.servers import (
    RssSampler,
    floor_server,
    free_port,
    medrec_server,
    postgraphile_server,
)
from bench.shapes import (
    MOBILE_PAGE,
    RECORDS_PER_PATIENT,
    Population,
    Shape,
    medrec_shapes,
    peer_shapes,
)

RESULTS_DIR = BENCH_DIR / "results"
REGION = "us-east-1"
USER_POOL = "us-east-1_medrecbench"
CLIENT_ID = "medrec-bench-client"
BUCKET = "medrec-bench-attachments"
POPULATION = 1100
ALL_SHAPES = ("mobile", "patient", "records", "writes", "fanout", "accesslog")
# Asked for by name only (with BENCH_AUDIT_ROWS): no peer has an access log.
_ON_REQUEST = ("accesslog",)
UNLIMITED = "1000000000"


@dataclass(frozen=True)
class Config:
    duration: float
    warmup: float
    connections: int
    workers: int
    patients: int
    audit_rows: int
    shapes: tuple[str, ...]
    subscribers: int
    sub_interval: float
    soak: float
    floor: bool
    peers: bool
    replica: bool

    @classmethod
    def from_env(cls, peers: bool) -> Config:
        env = os.environ
        default_shapes = ",".join(
            s for s in ALL_SHAPES if s not in _ON_REQUEST and not (peers and s == "fanout")
        )
        shapes = tuple(
            s.strip() for s in env.get("BENCH_SHAPES", default_shapes).split(",") if s.strip()
        )
        unknown = set(shapes) - set(ALL_SHAPES)
        if unknown:
            raise SystemExit(f"BENCH_SHAPES: unknown {sorted(unknown)}; choose from {ALL_SHAPES}")
        return cls(
            duration=float(env.get("BENCH_DURATION", "20")),
            warmup=float(env.get("BENCH_WARMUP", "5")),
            connections=int(env.get("BENCH_CONNECTIONS", "16")),
            workers=int(env.get("BENCH_WORKERS", str(os.cpu_count() or 1))),
            patients=int(env.get("BENCH_PATIENTS", "10000")),
            audit_rows=int(env.get("BENCH_AUDIT_ROWS", "0")),
            shapes=shapes,
            subscribers=int(env.get("BENCH_SUBSCRIBERS", "1000")),
            sub_interval=float(env.get("BENCH_SUB_INTERVAL", "1.0")),
            soak=float(env.get("BENCH_SOAK", "0")),
            floor=env.get("BENCH_FLOOR", "0") == "1",
            peers=peers,
            replica=env.get("BENCH_REPLICA", "0") == "1",
        )


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _server_env(database: Database, jwks_url: str, s3_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "MEDREC_DATABASE_URL": database.sqlalchemy_url,
        "MEDREC_COGNITO_REGION": REGION,
        "MEDREC_COGNITO_USER_POOL_ID": USER_POOL,
        "MEDREC_COGNITO_CLIENT_IDS": CLIENT_ID,
        "MEDREC_COGNITO_JWKS_URL": jwks_url,
        "MEDREC_S3_BUCKET": BUCKET,
        "MEDREC_S3_REGION": REGION,
        "MEDREC_S3_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": "medrec-bench",
        "AWS_SECRET_ACCESS_KEY": "medrec-bench",
        # One client address and one subject send everything: lift the per-process buckets.
        # The cost limits stay at their defaults (the mobile query costs 24201 of 50000).
        "MEDREC_RATE_LIMIT_PER_ADDRESS": UNLIMITED,
        "MEDREC_RATE_LIMIT_PER_SUBJECT": UNLIMITED,
    }


async def _population(database: Database, url: str, token: str) -> Population:
    """The POPULATION newest patients: ids from the API and UUIDs from SQL, in the same order."""
    headers = {"Authorization": f"Bearer {token}"}
    patient_ids: list[str] = []
    provider_ids: list[str] = []
    after: str | None = None
    query = """query Page($after: String) { patients(first: 100, after: $after) {
      edges { node { id primaryProvider { id } } } pageInfo { endCursor } } }"""
    async with httpx.AsyncClient(timeout=60) as client:
        while len(patient_ids) < POPULATION:
            answer = (
                await client.post(
                    url, json={"query": query, "variables": {"after": after}}, headers=headers
                )
            ).json()
            if answer.get("errors"):
                raise RuntimeError(f"listing patients failed: {answer['errors']}")
            page = answer["data"]["patients"]
            for edge in page["edges"]:
                patient_ids.append(edge["node"]["id"])
                provider_ids.append(edge["node"]["primaryProvider"]["id"])
            after = page["pageInfo"]["endCursor"]
    counter = StatementCounter(database)
    await counter.open()
    try:
        rows = await counter.fetch(
            """SELECT id::text AS id, primary_provider_id::text AS provider FROM patients
               WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2""",
            TENANT,
            POPULATION,
        )
        expected = await counter.fetch(
            """SELECT coalesce(sum(least(n, $3)), 0)::int AS total FROM (
                 SELECT (SELECT count(*) FROM medical_records r
                         WHERE r.tenant_id = p.tenant_id AND r.patient_id = p.id) AS n
                 FROM patients p WHERE p.tenant_id = $1
                 ORDER BY p.created_at DESC, p.id DESC LIMIT $2) AS newest""",
            TENANT,
            MOBILE_PAGE,
            RECORDS_PER_PATIENT,
        )
    finally:
        await counter.close()
    return Population(
        patient_ids=patient_ids[:POPULATION],
        provider_ids=provider_ids[:POPULATION],
        patient_uuids=[row["id"] for row in rows],
        provider_uuids=[row["provider"] for row in rows],
        expected_mobile_records=int(expected[0]["total"]),
    )


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _exact_sql(result: Result) -> str:
    return (
        f"{_num(result.sql_per_request_sequential)} ({_num(result.queries_per_request_sequential)})"
    )


def _minus(total: float | None, part: float | None) -> float | None:
    return None if total is None or part is None else total - part


def _split_sql(result: Result) -> str:
    """All statements per request under load, primary + replica."""
    replica = result.replica_sql_per_request
    if replica is None:
        return "-"
    return f"{_num(_minus(result.sql_per_request, replica))} + {_num(replica)}"


def _cpu(result: Result, split: bool) -> str:
    server, postgres = _num(result.server_cpu_us, 0), _num(result.postgres_cpu_us, 0)
    if not split:
        return f"{server} + {postgres}"
    replica = result.replica_cpu_us
    primary = result.postgres_cpu_us if replica is None else _minus(result.postgres_cpu_us, replica)
    return f"{server} + {_num(primary, 0)} + {_num(replica, 0)}"


def table(results: Sequence[Result], replica: bool = False) -> str:
    """With ``replica`` (BENCH_REPLICA), a column splitting the statements under load between
    the primary and the standby, and the CPU column split the same way."""
    header = (
        "| shape | server | req/s | p50 ms | p99 ms | errors | server RSS MiB (peak) "
        "| SQL/req under load: all (queries) "
        + ("| SQL/req under load: primary + replica " if replica else "")
        + "| SQL/req exact: all (queries) | KB/resp "
        + f"| CPU us/req: server + {'primary + replica' if replica else 'PostgreSQL'} "
        + "| PostgreSQL us/query |"
    )
    lines = [header, "|" + "---|" * (13 if replica else 12)]
    for r in results:
        rate = f"{100 * r.errors / (r.requests + r.errors):.1f}%" if r.requests + r.errors else "-"
        lines.append(
            f"| {r.title} | {r.server} | {r.rps:.1f} | {_num(r.p50_ms)} | {_num(r.p99_ms)} "
            f"| {r.errors} ({rate}) | {_mib(r.rss_peak_bytes)} "
            f"| {_num(r.sql_per_request)} ({_num(r.queries_per_request)}) "
            + (f"| {_split_sql(r)} " if replica else "")
            + f"| {_exact_sql(r)} "
            f"| {_num(None if r.bytes_per_response is None else r.bytes_per_response / 1000)} "
            f"| {_cpu(r, replica)} "
            f"| {_num(r.query_us, 0)} |"
        )
    return "\n".join(lines)


def ratio_table(ours: Sequence[Result], peers: Sequence[Result]) -> str:
    lines = [
        "| shape | medrec req/s | PostGraphile req/s | req/s ratio (medrec/peer) "
        "| p50 ratio | p99 ratio | SQL/req exact, all (queries): medrec / peer |",
        "|" + "---|" * 7,
    ]
    by_shape = {r.shape: r for r in peers}
    for mine in ours:
        peer = by_shape.get(mine.shape)
        if peer is None:
            continue

        def ratio(a: float | None, b: float | None) -> str:
            return "n/a" if a is None or not b else f"{a / b:.2f}"

        lines.append(
            f"| {mine.title} | {mine.rps:.1f} | {peer.rps:.1f} | {ratio(mine.rps, peer.rps)} "
            f"| {ratio(mine.p50_ms, peer.p50_ms)} | {ratio(mine.p99_ms, peer.p99_ms)} "
            f"| {_exact_sql(mine)} / {_exact_sql(peer)} |"
        )
    return "\n".join(lines)


NOTES = """Notes:
- medrec: `medrec serve --workers {workers}`, admin token of tenant {tenant} (every request is
  authenticated, authorised in SQL, cost-checked, logged, and appends an audit row); rate limits
  lifted for the single client, cost limits at their defaults.
- req/s and latency from wrk ({connections} connections, {duration:g} s after a {warmup:g} s
  warm-up); errors = socket errors + timeouts + non-2xx + 2xx answers with GraphQL `errors`.
- SQL/req: pg_stat_statements calls in the bench database per request: "all" counts every
  statement (BEGIN, COMMIT, ROLLBACK too), "queries" leaves out transaction control and SET.
  Under load: calls during the run / (requests completed + one in flight per connection at the
  end); exact: {probe} requests sent one at a time before the load. For the fan-out: per
  delivery.
- server RSS: the serve process and its workers (VmRSS from /proc), peak during the run.
- CPU us/req: user + system CPU (from /proc) of the server's processes and of PostgreSQL's
  (the embedded server's; n/a with BENCH_DATABASE_URL) during the run, per request handled.
- PostgreSQL us/query: pg_stat_statements' execution and planning time of the queries during
  the run, per query (waits for a CPU included, as the machine is shared).
- The server, PostgreSQL and wrk share this machine's {cpus} CPUs.
"""

REPLICA_NOTES = """- BENCH_REPLICA: medrec reads from a streaming hot standby of the same PostgreSQL
  (`MEDREC_DATABASE_READ_URLS`; mutations, audit rows and subscriptions go to the primary).
  SQL/req, CPU and PostgreSQL us/query count both servers; "primary + replica" splits all
  statements under load, and PostgreSQL's CPU, between the two (pg_stat_statements on each).
  The counts include medrec's replica monitor (a statement a second per worker on each
  server): a few tenths per request in the exact count of slow requests, negligible under load.
"""

PEER_NOTES = """- PostGraphile {version} (`postgraphile` CLI, NODE_ENV=production,
  --disable-graphiql, --disable-query-log, no watch, {peer_workers}, pool 10,
  connection-filter plugin for `visitDate >=`), connected as the PostgreSQL superuser: no
  authentication, no tenancy or role predicates, no cost or rate limits, no audit row, no
  request log; its writes are plain INSERT/UPDATE (no validation, version bump, status event
  or NOTIFY). Ratios > 1 mean medrec is faster (req/s) or slower (latency).
"""


def _postgraphile_version() -> str:
    try:
        package = json.loads(
            (BENCH_DIR / "node_modules" / "postgraphile" / "package.json").read_text()
        )
        return str(package["version"])
    except (OSError, ValueError, KeyError):
        return "4"


def _write_results(
    config: Config,
    ours: list[Result],
    peers: list[Result],
    extra: dict[str, Any],
    text: str,
) -> tuple[Path, Path]:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "-peers" if config.peers else ""
    json_path = RESULTS_DIR / f"{stamp}{suffix}.json"
    md_path = RESULTS_DIR / f"{stamp}{suffix}.md"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=BENCH_DIR,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    # Uncommitted changes to the served code make the run hard to reproduce: say so.
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "app", "schema", "resolvers", "models", "alembic"],
        cwd=BENCH_DIR.parent,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if dirty:
        commit += " + uncommitted changes"
    document = {
        "started": stamp,
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "config": config.__dict__,
        "results": [r.as_dict() for r in ours],
        "peer_results": [r.as_dict() for r in peers],
        "extra": extra,
    }
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    md_path.write_text(f"# medrec benchmark {stamp} (commit {commit})\n\n{text}\n")
    return json_path, md_path


async def _floor(
    config: Config, url: str, token: str, shape: Shape, counter: StatementCounter, threads: int
) -> Result:
    """The shape against bench/floor.py answering medrec's bytes for its first request."""
    async with httpx.AsyncClient(timeout=60) as client:
        first = shape.bodies[0].replace("__UUID__", str(uuid.uuid4()))
        answer = await client.post(
            url,
            content=first,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="medrec-floor-", suffix=".json") as body:
        body.write(answer.content)
        body.flush()
        with floor_server(Path(body.name), port=port, workers=config.workers) as floor:
            print(f"bench: floor, {shape.title} ...", flush=True)
            return await measure(
                server="floor",
                url=f"http://127.0.0.1:{port}/graphql",
                token=token,
                shape=shape,
                rss_pids=[floor.pid],
                postgres_pids=[],
                counter=counter,
                seconds=config.duration,
                warmup=config.warmup,
                connections=config.connections,
                threads=threads,
            )


async def _soak(
    config: Config,
    url: str,
    token: str,
    shape_list: list[Any],
    pids: list[int],
    counter: StatementCounter,
) -> dict[str, Any]:
    """The mobile shape for BENCH_SOAK seconds; RSS every 10 s (memory should stay flat)."""
    mobile = next(s for s in shape_list if s.key == "mobile")
    print(f"bench: soak, mobile query for {config.soak:g} s ...", flush=True)
    with RssSampler(pids, interval=10.0) as sampler:
        result = await measure(
            server="medrec",
            url=url,
            token=token,
            shape=mobile,
            rss_pids=pids,
            postgres_pids=[],
            counter=counter,
            seconds=config.soak,
            warmup=0,
            connections=config.connections,
            threads=min(config.connections, os.cpu_count() or 1),
        )
    samples = [rss for _, rss in sampler.samples]
    return {
        "seconds": config.soak,
        "rps": result.rps,
        "errors": result.errors,
        "rss_start_bytes": samples[0] if samples else None,
        "rss_end_bytes": samples[-1] if samples else None,
        "rss_peak_bytes": max(samples, default=None),
        "rss_samples_mib": [round(s / 2**20, 1) for s in samples],
    }


async def _bench(
    config: Config,
    database: Database,
    replica: Replica | None,
    jwks_url: str,
    s3_url: str,
    token: str,
) -> int:
    env = _server_env(database, jwks_url, s3_url)
    threads = min(config.connections, os.cpu_count() or 1)
    counter = StatementCounter(database, None if replica is None else replica.database)
    await counter.open()
    postgres_pids = [] if database.postmaster_pid is None else [database.postmaster_pid]
    ours: list[Result] = []
    peers: list[Result] = []
    extra: dict[str, Any] = {}
    if replica is not None:
        env["MEDREC_DATABASE_READ_URLS"] = replica.database.sqlalchemy_url
        extra["replica"] = {
            "data_directory": str(REPLICA_DIR),
            "made_seconds": replica.made_seconds,
            "caught_up_seconds": replica.caught_up_seconds,
            "disk_bytes": replica.disk_bytes,
        }
    try:
        load_shapes = [s for s in config.shapes if s != "fanout"]
        if load_shapes or config.soak:
            port = free_port()
            url = f"http://127.0.0.1:{port}/graphql"
            peer_url = ""
            with ExitStack() as servers:
                server = servers.enter_context(
                    medrec_server("medrec", env, port=port, workers=config.workers)
                )
                population = await _population(database, url, token)
                shape_list = medrec_shapes(population)
                peer_pids: list[int] = []
                if config.peers:
                    # Both up at once, each shape measured on one right after the other: a
                    # shared machine's load drifts over minutes, and a ratio should not.
                    peer_port = free_port()
                    peer_url = f"http://127.0.0.1:{peer_port}/graphql"
                    peer = servers.enter_context(
                        postgraphile_server(database, port=peer_port, workers=config.workers)
                    )
                    peer_pids = [peer.pid]
                peer_list = {shape.key: shape for shape in peer_shapes(population)}
                for shape in shape_list:
                    if shape.key not in load_shapes:
                        continue
                    print(f"bench: medrec, {shape.title} ...", flush=True)
                    ours.append(
                        await measure(
                            server="medrec",
                            url=url,
                            token=token,
                            shape=shape,
                            rss_pids=[server.pid],
                            postgres_pids=postgres_pids,
                            counter=counter,
                            seconds=config.duration,
                            warmup=config.warmup,
                            connections=config.connections,
                            threads=threads,
                        )
                    )
                    peer_shape = peer_list.get(shape.key)
                    if config.peers and peer_shape is not None:
                        print(f"bench: PostGraphile, {peer_shape.title} ...", flush=True)
                        peers.append(
                            await measure(
                                server="postgraphile",
                                url=peer_url,
                                token=None,
                                shape=peer_shape,
                                rss_pids=peer_pids,
                                postgres_pids=postgres_pids,
                                counter=counter,
                                seconds=config.duration,
                                warmup=config.warmup,
                                connections=config.connections,
                                threads=threads,
                            )
                        )
                    if config.floor:
                        ours.append(await _floor(config, url, token, shape, counter, threads))
                if config.soak:
                    extra["soak"] = await _soak(
                        config, url, token, shape_list, [server.pid], counter
                    )
        if "fanout" in config.shapes:
            extra["fanout"] = await _fanout(config, env, database, counter, token)
            ours.append(extra["fanout"].pop("result"))
    finally:
        await counter.close()

    text = table([*ours, *peers], replica is not None)
    if peers:
        text += "\n\nmedrec / PostGraphile 4:\n\n" + ratio_table(
            [r for r in ours if r.server == "medrec"], peers
        )
    if "fanout" in extra:
        fan = extra["fanout"]
        text += (
            f"\n\nSubscription fan-out: {fan['subscribed']} of {fan['subscribers']} subscribed in "
            f"{fan['connect_seconds']:.1f} s over two `medrec serve --workers 1` processes; "
            f"{fan['status_changes']} status changes; RSS per idle subscription "
            f"{fan['rss_per_idle_subscription_bytes'] / 1024:.1f} KiB "
            f"({_mib(fan['rss_before_bytes'])} -> {_mib(fan['rss_idle_bytes'])} MiB); latency "
            f"from the writer's HTTP response p50 "
            f"{_num(fan['latency_from_response_ms']['p50'])} ms, "
            f"p99 {_num(fan['latency_from_response_ms']['p99'])} ms."
        )
    if replica is not None:
        made = replica.made_seconds
        text += (
            f"\n\nReplica: {REPLICA_DIR.relative_to(BENCH_DIR.parent)}, "
            f"{_mib(replica.disk_bytes)} MiB on disk, "
            + ("kept from an earlier run" if made is None else f"made in {made:.0f} s")
            + f"; caught up with the primary in {replica.caught_up_seconds:.1f} s."
        )
    if "soak" in extra:
        soak = extra["soak"]
        text += (
            f"\n\nSoak ({soak['seconds']:g} s of the mobile query, {soak['rps']:.1f} req/s, "
            f"{soak['errors']} errors): server RSS {_mib(soak['rss_start_bytes'] or 0)} MiB at the "
            f"start, {_mib(soak['rss_end_bytes'] or 0)} MiB at the end, peak "
            f"{_mib(soak['rss_peak_bytes'] or 0)} MiB; samples every 10 s (MiB): "
            f"{soak['rss_samples_mib']}"
        )
    notes = NOTES.format(
        workers=config.workers,
        tenant=TENANT,
        connections=config.connections,
        duration=config.duration,
        warmup=config.warmup,
        probe=10,
        cpus=os.cpu_count(),
    )
    if peers:
        notes += PEER_NOTES.format(
            version=_postgraphile_version(),
            peer_workers=(
                f"--cluster-workers {config.workers}" if config.workers > 1 else "one node process"
            ),
        )
    if replica is not None:
        notes += REPLICA_NOTES
    text += "\n\n" + notes
    json_path, md_path = _write_results(config, ours, peers, extra, text)
    print("\n" + text)
    root = BENCH_DIR.parent
    print(f"Results: {json_path.relative_to(root)}, {md_path.relative_to(root)}")
    return 0


async def _fanout(
    config: Config,
    env: dict[str, str],
    database: Database,
    counter: StatementCounter,
    token: str,
) -> dict[str, Any]:
    ports = [free_port(), free_port()]
    print(
        f"bench: subscription fan-out, {config.subscribers} subscribers on two processes ...",
        flush=True,
    )
    with ExitStack() as stack:
        servers = [
            stack.enter_context(medrec_server(f"medrec-sub{i}", env, port=port, workers=1))
            for i, port in enumerate(ports)
        ]
        http_urls = [f"http://127.0.0.1:{port}/graphql" for port in ports]
        population = await _population(database, http_urls[0], token)
        targets = list(
            zip(population.patient_ids[100:], population.provider_ids[100:], strict=True)
        )
        result, extra = await run_fanout(
            http_urls=http_urls,
            ws_urls=[f"ws://127.0.0.1:{port}/graphql" for port in ports],
            token=token,
            server_pids=[server.pid for server in servers],
            counter=counter,
            subscribers=config.subscribers,
            seconds=config.duration,
            interval=config.sub_interval,
            targets=targets,
        )
    extra["result"] = result
    return extra


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--peers", action="store_true", help="also run the shapes against PostGraphile 4"
    )
    args = parser.parse_args(argv)
    config = Config.from_env(args.peers)
    _raise_file_limit()
    from app.ops.dev_issuer import JWKSServer, LocalTokenIssuer
    from app.ops.local_s3 import local_s3
    from app.ops.seed import synthetic_admin_subject

    # moto's S3 server logs every request it serves; only its warnings matter here.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    started = time.monotonic()
    with bench_database(sized_database(config.patients)) as database, ExitStack() as stack:
        prepare(database, patients=config.patients, audit_rows=config.audit_rows)
        # After seeding, so it starts from (or catches up with) the data the bench reads.
        replica = stack.enter_context(bench_replica(database)) if config.replica else None
        issuer = LocalTokenIssuer.load_or_create(
            DATA_DIR / "issuer-key.pem",
            issuer=f"https://cognito-idp.{REGION}.amazonaws.com/{USER_POOL}",
            client_id=CLIENT_ID,
        )
        jwks = stack.enter_context(JWKSServer(issuer.jwks))
        s3_url = stack.enter_context(local_s3(bucket=BUCKET, region=REGION))
        token = issuer.issue(
            synthetic_admin_subject(TENANT),
            groups=("admin",),
            tenant_id=TENANT,
            lifetime=timedelta(hours=24),
        )
        status = asyncio.run(_bench(config, database, replica, jwks.url, s3_url, token))
    print(f"bench: done in {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
