"""Refusals before any GraphQL work: forged cross-site requests, oversized bodies, batches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.api_client import Api, error_codes
from tests.factories import Factory


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_posts_a_browser_may_send_cross_site_are_refused(
    api: Api, factory: Factory, content_type: str
) -> None:
    await factory.patient()
    response = await api.client.post(
        "/graphql",
        content=json.dumps({"query": "{ patients { totalCount } }"}),
        headers={"Content-Type": content_type, "Authorization": f"Bearer {api.token()}"},
    )
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert "application/json" in response.json()["errors"][0]["message"]


async def test_get_queries_need_a_preflight_header(api: Api) -> None:
    params = {"query": "{ me { subject } }"}
    auth = {"Authorization": f"Bearer {api.token()}"}
    refused = await api.client.get("/graphql", params=params, headers=auth)
    assert refused.status_code == 400
    assert "apollo-require-preflight" in refused.json()["errors"][0]["message"]

    allowed = await api.client.get(
        "/graphql", params=params, headers={**auth, "apollo-require-preflight": "1"}
    )
    assert allowed.status_code == 200
    assert allowed.json()["data"]["me"]["subject"] == "admin-subject"


async def test_mutations_over_get_are_refused(api: Api) -> None:
    response = await api.client.get(
        "/graphql",
        params={"query": 'mutation { removeDiagnosis(id: "x") { record { id } } }'},
        headers={"Authorization": f"Bearer {api.token()}", "apollo-require-preflight": "1"},
    )
    assert response.status_code in (400, 405)


async def test_the_graphiql_page_is_a_plain_get(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200


async def test_a_body_over_the_limit_is_413(api: Api) -> None:
    padding = "x" * (1024 * 1024)
    body = json.dumps({"query": "{ me { subject } }", "variables": {"pad": padding}})
    declared = await api.client.post(
        "/graphql",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api.token()}"},
    )
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536].encode()

    streamed = await api.client.post(
        "/graphql",
        content=chunks(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api.token()}"},
    )
    assert streamed.status_code == 413


async def test_batched_operations_are_refused(api: Api) -> None:
    response = await api.client.post(
        "/graphql",
        json=[{"query": "{ me { subject } }"}, {"query": "{ me { subject } }"}],
        headers={"Authorization": f"Bearer {api.token()}"},
    )
    assert response.status_code == 400
