"""`medrec serve` writes JSON lines, in every worker, with one request line per request."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from app.ops.dev_issuer import LocalTokenIssuer
from app.settings import Settings
from tests.servers import free_port, server_environment


def test_serve_logs_json_lines(settings: Settings, issuer: LocalTokenIssuer) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "app.ops.cli", "serve", "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(
        command, env=server_environment(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    token = issuer.issue("serve-log-subject", groups=("admin",), tenant_id="t-serve-log")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "medrec serve exited"
            assert time.monotonic() < deadline, "medrec serve did not answer in time"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        response = httpx.post(
            f"{base}/graphql",
            json={"query": "query ServeLogMe { me { subject } }"},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "serve-log-1"},
        )
        assert response.json()["data"]["me"]["subject"] == "serve-log-subject"
        metrics = httpx.get(f"{base}/metrics")
        assert "medrec_graphql_requests_total" in metrics.text
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)

    lines = stdout.decode().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]  # every line is JSON
    assert {"uvicorn.error", "medrec.request"} <= {entry["logger"] for entry in entries}
    requests = [entry for entry in entries if entry.get("request_id") == "serve-log-1"]
    assert len(requests) == 1
    assert requests[0]["operation"] == "ServeLogMe"
    assert requests[0]["subject"] == "serve-log-subject"
    assert requests[0]["outcome"] == "ok"
    # The probes log at DEBUG, below MEDREC_LOG_LEVEL; uvicorn's access log stays off.
    assert not [entry for entry in entries if entry.get("path") == "/readyz"]
    assert not [entry for entry in entries if entry["logger"] == "uvicorn.access"]
    output = stdout + stderr
    assert token.encode() not in output
    assert token.split(".")[1].encode() not in output
