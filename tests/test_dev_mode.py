"""`medrec dev` as a new user runs it: a real process that prints working tokens."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

STARTUP_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class DevServer:
    def __init__(self, process: subprocess.Popen[str], port: int, banner: list[str]) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.banner = banner

    def headers(self, role: str, tenant: str) -> dict[str, str]:
        for index, line in enumerate(self.banner):
            if line.startswith(f"# {role} of {tenant}"):
                parsed: dict[str, str] = json.loads(self.banner[index + 1])
                return parsed
        raise AssertionError(f"no {role} login for {tenant} in the banner")


def _start(data_home: Path) -> DevServer:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.ops.cli", "dev", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "XDG_DATA_HOME": str(data_home)},
    )
    assert process.stdout is not None
    banner: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("medrec dev exited:\n" + "".join(banner))
        banner.append(line.rstrip("\n"))
        if "Application startup complete" in line:
            return DevServer(process, port, banner)
    process.kill()
    raise AssertionError("medrec dev did not start in time:\n" + "\n".join(banner))


def _stop(server: DevServer) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise


@pytest.fixture(scope="module")
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg-data")


@pytest.fixture(scope="module")
def dev_server(data_home: Path) -> Iterator[DevServer]:
    server = _start(data_home)
    yield server
    _stop(server)


def _graphql(server: DevServer, query: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


def test_printed_tokens_work_for_each_role(dev_server: DevServer) -> None:
    assert any(line.startswith("GraphiQL: http://127.0.0.1:") for line in dev_server.banner)
    for tenant in ("demo-north", "demo-south"):
        for role in ("admin", "provider", "patient"):
            me = _graphql(dev_server, "{ me { tenantId roles } }", dev_server.headers(role, tenant))
            assert me["data"]["me"] == {"tenantId": tenant, "roles": [role.upper()]}


def test_demo_data_is_there(dev_server: DevServer) -> None:
    body = _graphql(
        dev_server,
        "{ patients(first: 3) { totalCount edges { node { records(first: 2) { totalCount } } } } }",
        dev_server.headers("admin", "demo-north"),
    )
    patients = body["data"]["patients"]
    assert patients["totalCount"] > 0
    assert all(e["node"]["records"]["totalCount"] > 0 for e in patients["edges"])


def test_graphiql_is_served(dev_server: DevServer) -> None:
    page = httpx.get(f"{dev_server.url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


def test_a_provider_attaches_a_file_as_the_readme_says(dev_server: DevServer) -> None:
    headers = dev_server.headers("provider", "demo-north")
    drafts = _graphql(
        dev_server,
        "{ records(first: 1, filter: {status: [DRAFT]}) { edges { node { id } } } }",
        headers,
    )["data"]["records"]["edges"]
    assert drafts, "the demo provider has a draft record"
    content = b"hello"
    requested = _graphql(
        dev_server,
        "mutation { requestAttachmentUpload(input: {recordId: "
        f'"{drafts[0]["node"]["id"]}", fileName: "note.txt", contentType: "text/plain", '
        f'sizeBytes: {len(content)}, checksumSha256: "{hashlib.sha256(content).hexdigest()}"}}) '
        "{ attachment { id } upload { url fields } } }",
        headers,
    )["data"]["requestAttachmentUpload"]
    upload = requested["upload"]
    sent = httpx.post(
        upload["url"], data=upload["fields"], files={"file": ("note.txt", content, "text/plain")}
    )
    assert sent.status_code in (200, 204), sent.text
    confirmed = _graphql(
        dev_server,
        f'mutation {{ confirmAttachmentUpload(id: "{requested["attachment"]["id"]}") '
        "{ attachment { status downloadUrl } } }",
        headers,
    )["data"]["confirmAttachmentUpload"]["attachment"]
    assert confirmed["status"] == "AVAILABLE"
    assert httpx.get(confirmed["downloadUrl"]).content == content


def test_restart_keeps_data_and_the_signing_key(dev_server: DevServer, data_home: Path) -> None:
    headers = dev_server.headers("provider", "demo-south")
    query = "{ patients { totalCount } }"
    before = _graphql(dev_server, query, headers)["data"]
    _stop(dev_server)
    restarted = _start(data_home)
    try:
        # A token printed by the first run still works: same key, same data, no duplicate seed.
        assert _graphql(restarted, query, headers)["data"] == before
    finally:
        _stop(restarted)
