"""`medrec serve` and `medrec migrate` as production runs them: real processes, env config."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.postgres import scratch_database


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "medrec serve exited"
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("medrec serve did not answer in time")


def test_migrate_then_serve_with_two_workers() -> None:
    with scratch_database() as database_url:
        env = {**os.environ, "MEDREC_DATABASE_URL": database_url}
        port = _free_port()
        command = [sys.executable, "-m", "app.ops.cli"]
        serve = [*command, "serve", "--port", str(port), "--workers", "2"]

        process = subprocess.Popen(serve, env=env, stderr=subprocess.DEVNULL)
        try:
            # Before migrating, the server runs but is not ready.
            before = _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
            assert before.status_code == 503
            assert before.json()["status"] == "unavailable"

            subprocess.run([*command, "migrate"], env=env, check=True, capture_output=True)

            assert httpx.get(f"http://127.0.0.1:{port}/readyz").json() == {"status": "ok"}
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
            unauthenticated = httpx.post(
                f"http://127.0.0.1:{port}/graphql", json={"query": "{ me { subject } }"}
            ).json()
            assert unauthenticated["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        finally:
            process.terminate()
            process.wait(timeout=30)
