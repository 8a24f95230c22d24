"""`medrec dev` as a new user runs it: a real process that prints working tokens."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def pgdata_of(data_home: Path) -> Path:
    """The PostgreSQL data directory of `medrec dev` run with XDG_DATA_HOME=data_home."""
    return (data_home / "medrec" / "dev" / "pgdata").resolve()


def postgres_pids(pgdata: Path) -> list[int]:
    """Processes of a PostgreSQL of ``pgdata``, from /proc: its postmaster (``-D`` names the data
    directory) and its children, which run in the data directory, postmaster or not."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            args = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone, or a zombie
            continue
        names_it = any(
            flag == b"-D" and value == os.fsencode(pgdata)
            for flag, value in itertools.pairwise(args)
        )
        if names_it or cwd == str(pgdata):
            found.append(int(entry.name))
    return found


def wait_for_no_postgres(pgdata: Path, timeout: float = 10.0) -> list[int]:
    """The pids of ``pgdata``'s PostgreSQL still there after ``timeout`` seconds (none: gone)."""
    deadline = time.monotonic() + timeout
    while (left := postgres_pids(pgdata)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def kill_postgres(pgdata: Path) -> None:
    """Test cleanup: ends whatever PostgreSQL of ``pgdata`` a failed test left running."""
    for signum in (signal.SIGQUIT, signal.SIGKILL):  # an immediate shutdown, else no shutdown
        left = postgres_pids(pgdata)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        if not wait_for_no_postgres(pgdata, timeout=5):
            return


class DevServer:
    """A `medrec dev` process; a thread reads its output (stdout and stderr) as it comes."""

    def __init__(self, data_home: Path, port: int | None = None) -> None:
        self.data_home = data_home
        self.pgdata = pgdata_of(data_home)
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.ops.cli", "dev", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "XDG_DATA_HOME": str(data_home)},
        )
        self.lines: list[str] = []
        self.banner: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = STARTUP_TIMEOUT) -> bool:
        """Whether a line with ``text`` came out within ``timeout`` seconds (no: it exited)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    return False
                self._changed.wait(min(left, 0.5))
            return True

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def finish(self, timeout: float = 60.0) -> int:
        """Waits for the process to exit (killing it after ``timeout``) and for its output."""
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._reader.join(timeout=10)
        return returncode

    def kill(self) -> None:
        """Test cleanup: the process and its PostgreSQL, whatever state a failed test left."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        kill_postgres(self.pgdata)

    def headers(self, role: str, tenant: str) -> dict[str, str]:
        for index, line in enumerate(self.banner):
            if line.startswith(f"# {role} of {tenant}"):
                parsed: dict[str, str] = json.loads(self.banner[index + 1])
                return parsed
        raise AssertionError(f"no {role} login for {tenant} in the banner")


def start_dev(data_home: Path, port: int | None = None) -> DevServer:
    """A `medrec dev` process once it serves; killed with its PostgreSQL if it does not."""
    server = DevServer(data_home, port)
    try:
        if not server.wait_for("Application startup complete"):
            raise AssertionError("medrec dev did not start:\n" + server.output())
    except BaseException:
        server.kill()
        raise
    server.banner = list(server.lines)
    return server


def stop_dev(server: DevServer) -> None:
    server.process.send_signal(signal.SIGINT)
    server.finish()


@contextmanager
def running_dev(data_home: Path) -> Iterator[DevServer]:
    """A `medrec dev` of ``data_home``, stopped with Ctrl-C afterwards; whatever happens, nothing
    of it is left running."""
    try:
        server = start_dev(data_home)
        try:
            yield server
            stop_dev(server)
        finally:
            server.kill()
    finally:
        kill_postgres(pgdata_of(data_home))


@pytest.fixture(scope="module")
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("xdg-data")
    yield home
    kill_postgres(pgdata_of(home))


@pytest.fixture(scope="module")
def dev_server(data_home: Path) -> Iterator[DevServer]:
    server = start_dev(data_home)
    try:
        yield server
        stop_dev(server)
    finally:
        server.kill()


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
    stop_dev(dev_server)
    restarted = start_dev(data_home)
    try:
        # A token printed by the first run still works: same key, same data, no duplicate seed.
        assert _graphql(restarted, query, headers)["data"] == before
        stop_dev(restarted)
    finally:
        restarted.kill()
