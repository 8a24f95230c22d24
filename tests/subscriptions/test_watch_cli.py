"""``medrec watch`` prints the events it receives as JSON lines."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.ops.dev_issuer import LocalTokenIssuer
from app.ops.watch import FIRST_CONNECT_ATTEMPTS
from models.enums import RecordStatus
from tests.servers import free_port
from tests.subscriptions.conftest import Server
from tests.subscriptions.helpers import changed, latest_sequence, record_gid, stored_events

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory

ROOT = Path(__file__).resolve().parents[2]


async def _line(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    async with asyncio.timeout(15):
        raw = await process.stdout.readline()
    assert raw, "medrec watch exited"
    event: dict[str, Any] = json.loads(raw)
    return event


async def test_watch_prints_events_as_json_lines(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    record = await factory.record(
        await factory.patient(), await factory.provider(), status=RecordStatus.DRAFT
    )
    await factory.diagnosis(record)
    record_id = record_gid(record)
    admin = api.token()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.ops.cli",
        "watch",
        "--url",
        servers[0].ws_url,
        "--token",
        # As medrec dev prints it, in a header.
        f"Bearer {admin}",
        # Replays from where the test starts: the changes below are printed however soon after
        # the start they commit.
        "--after",
        await latest_sequence(sessionmaker, api.tenant_id),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        finalized = await changed(servers[1], admin, record_id, "FINALIZED", 1)
        await changed(servers[0], admin, record_id, "AMENDED", finalized["version"], "addendum")
        lines = [await _line(process), await _line(process)]
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
    stored = await stored_events(sessionmaker, api.tenant_id)
    assert [line["sequence"] for line in lines] == [str(event.sequence) for event in stored]
    assert [(line["previousStatus"], line["status"]) for line in lines] == [
        ("DRAFT", "FINALIZED"),
        ("FINALIZED", "AMENDED"),
    ], stderr
    assert lines[1]["reason"] == "addendum"
    assert {line["record"]["id"] for line in lines} == {record_id}
    assert all(line["changedBy"] == "admin-subject" for line in lines)


async def _watch_until_exit(url: str, token: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.ops.cli",
        "watch",
        "--url",
        url,
        "--token",
        token,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_watch_stops_with_an_error_when_its_token_is_refused(
    servers: list[Server],
) -> None:
    code, stderr = await _watch_until_exit(servers[0].ws_url, "garbage")
    assert code == 1
    assert "4403" in stderr
    assert "not a JWT" in stderr


async def test_watch_says_a_token_of_another_issuer_is_refused(
    api: Api, servers: list[Server]
) -> None:
    stranger = LocalTokenIssuer(issuer="https://issuer.example", client_id="another-client")
    token = stranger.issue("admin-subject", groups=("admin",), tenant_id=api.tenant_id)
    code, stderr = await _watch_until_exit(servers[0].ws_url, token)
    assert code == 1
    assert "4403" in stderr
    assert "refused the token" in stderr


async def test_watch_gives_up_on_a_server_it_never_reached(api: Api) -> None:
    code, stderr = await _watch_until_exit(f"ws://127.0.0.1:{free_port()}/graphql", api.token())
    assert code == 1
    assert "cannot reach a medrec server" in stderr
    assert stderr.count("retrying") == FIRST_CONNECT_ATTEMPTS - 1


async def test_watch_stops_with_an_error_when_its_token_expires(
    api: Api, issuer: LocalTokenIssuer, servers: list[Server]
) -> None:
    """Retrying cannot fix an expired token: `watch` says so and fails, as it does for 4403."""
    short = issuer.issue(
        "admin-subject", groups=("admin",), tenant_id=api.tenant_id, lifetime=timedelta(seconds=2)
    )
    code, stderr = await _watch_until_exit(servers[1].ws_url, short)
    assert "4401" in stderr
    assert "the token expired at" in stderr
    assert code == 1
