"""Apollo's automatic persisted queries, and the allow-list mode."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.server.main import create_app
from app.server.persisted_queries import register
from app.settings import Settings
from tests.api_client import Api, error_codes

QUERY = "query Count { patients { totalCount } }"
SHA = hashlib.sha256(QUERY.encode()).hexdigest()


def _persisted(sha256: str) -> dict[str, object]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


async def test_apq_round_trip_over_post_and_get(api: Api) -> None:
    auth = {"Authorization": f"Bearer {api.token()}"}
    unknown = await api.client.post(
        "/graphql", json={"extensions": _persisted("0" * 64)}, headers=auth
    )
    assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"

    registered = await api.client.post(
        "/graphql", json={"query": QUERY, "extensions": _persisted(SHA)}, headers=auth
    )
    assert registered.json()["data"] == {"patients": {"totalCount": 0}}

    by_hash = await api.client.post("/graphql", json={"extensions": _persisted(SHA)}, headers=auth)
    assert by_hash.json()["data"] == {"patients": {"totalCount": 0}}

    # A GET a cache can key on: the hash alone in the URL.
    cached = await api.client.get(
        "/graphql",
        params={"extensions": f'{{"persistedQuery":{{"version":1,"sha256Hash":"{SHA}"}}}}'},
        headers={**auth, "apollo-require-preflight": "1"},
    )
    assert cached.json()["data"] == {"patients": {"totalCount": 0}}


async def test_a_hash_that_does_not_match_the_document_is_refused(api: Api) -> None:
    response = await api.client.post(
        "/graphql",
        json={"query": "{ me { subject } }", "extensions": _persisted(SHA)},
        headers={"Authorization": f"Bearer {api.token()}"},
    )
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert "does not match" in response.json()["errors"][0]["message"]


@pytest.fixture
async def allow_list_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"persisted_queries_only": True}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
            yield client


async def test_allow_list_mode_runs_only_registered_documents(
    api: Api,
    allow_list_client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    document = "query AllowedCount { patients { totalCount } }"
    auth = {"Authorization": f"Bearer {api.token()}"}
    refused = await allow_list_client.post("/graphql", json={"query": document}, headers=auth)
    assert error_codes(refused.json()) == ["FORBIDDEN"]

    async with sessionmaker() as session, session.begin():
        [sha256] = await register(session, [document])

    allowed = await allow_list_client.post("/graphql", json={"query": document}, headers=auth)
    assert allowed.json()["data"] == {"patients": {"totalCount": 0}}
    by_hash = await allow_list_client.post(
        "/graphql", json={"extensions": _persisted(sha256)}, headers=auth
    )
    assert by_hash.json()["data"] == {"patients": {"totalCount": 0}}
    other = await allow_list_client.post(
        "/graphql", json={"query": "{ me { subject } }"}, headers=auth
    )
    assert error_codes(other.json()) == ["FORBIDDEN"]


def test_register_queries_command_prints_the_hashes(tmp_path: Path, database_url: str) -> None:
    document = "query FromAFile { me { subject } }\n"
    path = tmp_path / "from-a-file.graphql"
    path.write_text(document)
    printed = subprocess.run(
        [sys.executable, "-m", "app.ops.cli", "register-queries", str(path)],
        env={**os.environ, "MEDREC_DATABASE_URL": database_url},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert printed == f"{hashlib.sha256(document.encode()).hexdigest()}  {path}\n"
