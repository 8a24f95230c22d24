"""A running app whose user pool rotates its keys: `MEDREC_JWKS_MAX_AGE_SECONDS` bounds how long a
removed key keeps verifying."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.ops.dev_issuer import JWKSServer, LocalTokenIssuer
from app.server.main import create_app
from app.settings import Settings
from tests.api_client import error_codes

ME = "{ me { subject } }"


class RotatingPool:
    """The keys the pool's JWKS endpoint publishes now."""

    def __init__(self, *issuers: LocalTokenIssuer) -> None:
        self.issuers = list(issuers)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [issuer.public_jwk() for issuer in self.issuers]}


@pytest.fixture
def key_a(issuer: LocalTokenIssuer) -> LocalTokenIssuer:
    return issuer


@pytest.fixture
def key_b(issuer: LocalTokenIssuer) -> LocalTokenIssuer:
    return LocalTokenIssuer(issuer=issuer.issuer, client_id=issuer.client_id)


@pytest.fixture
def pool(key_a: LocalTokenIssuer) -> RotatingPool:
    return RotatingPool(key_a)


@pytest.fixture
def pool_server(pool: RotatingPool) -> Iterator[JWKSServer]:
    with JWKSServer(pool.jwks) as server:
        yield server


@pytest.fixture
async def app_client(
    settings: Settings, pool_server: JWKSServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """An app reading its max age from the environment, as `medrec serve` does."""
    monkeypatch.setenv("MEDREC_JWKS_MAX_AGE_SECONDS", "1")
    fields = settings.model_dump(exclude={"jwks_max_age_seconds", "cognito_jwks_url"})
    app = create_app(Settings(**fields, cognito_jwks_url=pool_server.url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
            yield client


async def me(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_token_of_a_key_removed_from_the_jwks_is_refused_once_the_max_age_passes(
    app_client: httpx.AsyncClient,
    pool: RotatingPool,
    pool_server: JWKSServer,
    key_a: LocalTokenIssuer,
    key_b: LocalTokenIssuer,
) -> None:
    token = key_a.issue("subject-a")
    assert (await me(app_client, token))["data"] == {"me": {"subject": "subject-a"}}
    pool.issuers = [key_b]
    # Within the max age the cached keys answer, without asking the pool.
    assert (await me(app_client, token))["data"] == {"me": {"subject": "subject-a"}}
    assert pool_server.hits == 1

    await asyncio.sleep(1.1)

    refused = await me(app_client, token)
    assert error_codes(refused) == ["UNAUTHENTICATED"]
    assert "unknown signing key" in refused["errors"][0]["message"]
    assert refused["data"] is None
    accepted = await me(app_client, key_b.issue("subject-b"))
    assert accepted["data"] == {"me": {"subject": "subject-b"}}
    assert pool_server.hits == 2
