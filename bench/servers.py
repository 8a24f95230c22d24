"""The servers under test, started as subprocesses, and their memory and CPU (from /proc)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from bench.database import BENCH_DIR, DATA_DIR, MEDREC, Database

LOG_DIR = DATA_DIR / "logs"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _descendants(pids: list[int]) -> set[int]:
    tree = _children()
    seen: set[int] = set()
    stack = list(pids)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stack.extend(tree.get(pid, ()))
    return seen


def tree_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User and system CPU seconds of these processes and all their descendants, by pid."""
    times: dict[int, float] = {}
    for pid in _descendants(pids):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime and stime: fields 14 and 15 of proc(5), counted from the state (field 3).
        times[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return times


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two ``tree_cpu_seconds``: processes that exited meanwhile are lost,
    so the pools' long-lived connections are what this counts well."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def tree_rss_bytes(pids: list[int]) -> int:
    """Sum of VmRSS over these processes and all their descendants."""
    return sum(_rss_kib(pid) for pid in _descendants(pids)) * 1024


class RssSampler:
    """Samples the RSS of process trees in a background thread; keeps the peak and the last."""

    def __init__(self, pids: list[int], interval: float = 0.5) -> None:
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.samples: list[tuple[float, int]] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), tree_rss_bytes(self._pids)))
            self._stop.wait(self._interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), tree_rss_bytes(self._pids)))

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    @property
    def last(self) -> int:
        return self.samples[-1][1] if self.samples else 0


class Process:
    """A server subprocess in its own process group, logging to bench/.data/logs/<name>.log."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        ready_url: str,
        cwd: Path | None = None,
        ready_body: bytes | None = None,
        ready_timeout: float = 90.0,
    ) -> None:
        self.name = name
        self._argv = argv
        self._env = dict(env)
        self.ready_url = ready_url
        self._ready_body = ready_body
        self._cwd = cwd
        self._ready_timeout = ready_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{self.name}.log"
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self._argv,
            env=self._env,
            cwd=self._cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._process.returncode}; see {self.log_path}"
                )
            try:
                if self._ready_body is None:
                    answer = httpx.get(self.ready_url, timeout=2)
                else:
                    answer = httpx.post(
                        self.ready_url,
                        content=self._ready_body,
                        headers={"Content-Type": "application/json"},
                        timeout=2,
                    )
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"{self.name} not ready after {self._ready_timeout}s; see {self.log_path}"
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            # The whole group: uvicorn's workers and node's cluster workers go with their parent.
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def medrec_server(name: str, env: Mapping[str, str], *, port: int, workers: int) -> Process:
    """``medrec serve`` exactly as production runs it, configured by ``env``."""
    return Process(
        name,
        [MEDREC, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env,
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )


def floor_server(body: Path, *, port: int, workers: int) -> Process:
    """bench/floor.py on uvicorn with ``medrec serve``'s worker count, answering ``body``."""
    argv = [
        str(Path(MEDREC).with_name("python")),
        "-m",
        "uvicorn",
        "bench.floor:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--proxy-headers",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return Process(
        "floor",
        argv,
        {**os.environ, "BENCH_FLOOR_BODY": str(body)},
        ready_url=f"http://127.0.0.1:{port}/",
        cwd=BENCH_DIR.parent,
    )


def postgraphile_server(database: Database, *, port: int, workers: int) -> Process:
    """PostGraphile 4 from bench/node_modules, production options, as the database superuser."""
    binary = BENCH_DIR / "node_modules" / ".bin" / "postgraphile"
    if not binary.exists():
        raise RuntimeError("PostGraphile is not installed: run `npm ci` in bench/")
    argv = [
        str(binary),
        "--connection",
        database.node_url(),
        "--schema",
        "public",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--disable-graphiql",
        "--disable-query-log",
        "--append-plugins",
        "postgraphile-plugin-connection-filter",
        "--max-pool-size",
        "10",
    ]
    if workers > 1:
        argv += ["--cluster-workers", str(workers)]
    env = {**os.environ, "NODE_ENV": "production"}
    if shutil.which("node") is None:
        raise RuntimeError("node is not installed")
    return Process(
        "postgraphile",
        argv,
        env,
        # PostGraphile 4 has no health route: ready once it answers a query.
        ready_url=f"http://127.0.0.1:{port}/graphql",
        ready_body=b'{"query": "{ __typename }"}',
        cwd=BENCH_DIR,
    )
