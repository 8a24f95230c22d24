"""Per-caller token buckets: a client address and a token subject each get their own rate."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.server.main import create_app
from app.settings import Settings
from tests.api_client import Api, error_codes

ME = {"query": "{ me { subject } }"}


@pytest.fixture
async def strict_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose limits are 3 requests a minute per address and 2 per subject."""
    app = create_app(
        settings.model_copy(update={"rate_limit_per_address": 3, "rate_limit_per_subject": 2})
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
            yield client


async def test_a_subject_over_its_rate_is_rate_limited(
    api: Api, strict_client: httpx.AsyncClient
) -> None:
    headers = {"Authorization": f"Bearer {api.token(subject='busy')}"}
    for _ in range(2):
        ok = await strict_client.post("/graphql", json=ME, headers=headers)
        assert ok.json()["data"]["me"]["subject"] == "busy"
    limited = await strict_client.post("/graphql", json=ME, headers=headers)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    body = limited.json()
    assert error_codes(body) == ["RATE_LIMITED"]
    assert body["errors"][0]["extensions"]["retryAfter"] == int(limited.headers["retry-after"])


async def test_an_address_over_its_rate_is_refused_before_any_work(
    api: Api, strict_client: httpx.AsyncClient
) -> None:
    # Three different subjects from one address: the address bucket (3) runs out first.
    for subject in ("a", "b", "c"):
        response = await strict_client.post(
            "/graphql", json=ME, headers={"Authorization": f"Bearer {api.token(subject=subject)}"}
        )
        assert response.status_code == 200
    refused = await strict_client.post(
        "/graphql", json=ME, headers={"Authorization": f"Bearer {api.token(subject='d')}"}
    )
    assert refused.status_code == 429
    assert error_codes(refused.json()) == ["RATE_LIMITED"]
    assert "retry-after" in refused.headers
