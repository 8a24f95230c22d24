"""What the server shows to whom: introspection can be switched off, CORS only where configured."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.server.main import create_app
from app.settings import Settings
from tests.api_client import Api, error_codes


@pytest.fixture
async def configured(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(
            update={"introspection": False, "cors_origins": ("https://clinic.example",)}
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.30", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
            yield client


async def test_introspection_can_be_switched_off(api: Api, configured: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {api.token()}"}
    hidden = await configured.post(
        "/graphql", json={"query": "{ __schema { queryType { name } } }"}, headers=auth
    )
    assert set(error_codes(hidden.json())) == {"BAD_USER_INPUT"}
    assert all("introspection" in e["message"].lower() for e in hidden.json()["errors"])
    served = await configured.post("/graphql", json={"query": "{ me { subject } }"}, headers=auth)
    assert served.json()["data"]["me"]["subject"] == "admin-subject"
    # On by default.
    shown = await api.post("{ __schema { queryType { name } } }")
    assert shown.json()["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_cors_allows_only_configured_origins(configured: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await configured.options(
        "/graphql", headers={"Origin": "https://clinic.example", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://clinic.example"
    refused = await configured.options(
        "/graphql", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers


async def test_without_configured_origins_no_origin_is_allowed(api: Api) -> None:
    preflight = await api.client.options(
        "/graphql",
        headers={
            "Origin": "https://clinic.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code != 200
    assert "access-control-allow-origin" not in preflight.headers
    answered = await api.post("{ me { subject } }", headers={"Origin": "https://clinic.example"})
    assert "access-control-allow-origin" not in answered.headers
