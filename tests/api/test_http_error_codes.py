"""Every error the API returns over HTTP carries one of the contract's codes, whatever was wrong."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.server.main import create_app
from app.settings import Settings
from tests.api_client import Api, error_codes, uncoded_errors

PREFLIGHT = {"apollo-require-preflight": "1"}
ONE_QUERY = "{ patients { totalCount } }"


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _json(body: str) -> dict[str, str]:
    return {"content": body, "headers": {"content-type": "application/json"}}  # type: ignore[dict-item]


# Each: (what went wrong, method, request keyword arguments, expected code).
REQUESTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("a syntax error", "POST", {"json": {"query": "{ patients {"}}, "BAD_USER_INPUT"),
    ("an unknown field", "POST", {"json": {"query": "{ nothing }"}}, "BAD_USER_INPUT"),
    (
        "a variable of the wrong type",
        "POST",
        {
            "json": {
                "query": "query($n: Int) { patients(first: $n) { totalCount } }",
                "variables": {"n": "many"},
            }
        },
        "BAD_USER_INPUT",
    ),
    (
        "a missing required variable",
        "POST",
        {"json": {"query": "query($id: ID!) { patient(id: $id) { id } }"}},
        "BAD_USER_INPUT",
    ),
    (
        "two operations and no operationName",
        "POST",
        {"json": {"query": "query A { me { subject } } query B { patients { totalCount } }"}},
        "BAD_USER_INPUT",
    ),
    (
        "an Int beyond 32 bits",
        "POST",
        {
            "json": {
                "query": "query($n: Int) { patients(first: $n) { totalCount } }",
                "variables": {"n": 2**40},
            }
        },
        "BAD_USER_INPUT",
    ),
    (
        "an unknown operation name",
        "POST",
        {"json": {"query": "query A { me { subject } }", "operationName": "B"}},
        "BAD_USER_INPUT",
    ),
    ("no query at all", "POST", {"json": {}}, "BAD_USER_INPUT"),
    ("a body that is not JSON", "POST", _json("{not json"), "BAD_USER_INPUT"),
    (
        "a body with a lone surrogate",
        "POST",
        _json('{"query": "{ me { subject } } #\\ud800"}'),
        "BAD_USER_INPUT",
    ),
    (
        "variables that are not an object",
        "POST",
        {"json": {"query": ONE_QUERY, "variables": [1]}},
        "BAD_USER_INPUT",
    ),
    ("a batch", "POST", {"json": [{"query": ONE_QUERY}]}, "BAD_USER_INPUT"),
    (
        "a form post",
        "POST",
        {"content": "query=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        "BAD_USER_INPUT",
    ),
    ("a GET without a preflight header", "GET", {"params": {"query": ONE_QUERY}}, "BAD_USER_INPUT"),
    (
        "a mutation over GET",
        "GET",
        {
            "params": {
                "query": 'mutation { addDiagnosis(input: {recordId: "x", icd10Code: "I10", '
                'description: "d", type: PRIMARY}) { diagnosis { id } } }'
            },
            "headers": PREFLIGHT,
        },
        "BAD_USER_INPUT",
    ),
    (
        "a method the endpoint does not serve",
        "PUT",
        {"json": {"query": ONE_QUERY}},
        "BAD_USER_INPUT",
    ),
    (
        "a declared body over the limit",
        "POST",
        {
            "content": b"{}",
            "headers": {
                "content-type": "application/json",
                "content-length": str(10 * 1024 * 1024),
            },
        },
        "BAD_USER_INPUT",
    ),
    (
        "a streamed body over the limit",
        "POST",
        {
            "content": _chunks([b'{"query": "', b" " * (2 * 1024 * 1024), b'"}']),
            "headers": {"content-type": "application/json"},
        },
        "BAD_USER_INPUT",
    ),
    (
        "an unknown persisted query",
        "POST",
        {"json": {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}},
        "BAD_USER_INPUT",
    ),
    (
        "a persisted query whose hash does not match",
        "POST",
        {
            "json": {
                "query": ONE_QUERY,
                "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "1" * 64}},
            }
        },
        "BAD_USER_INPUT",
    ),
    (
        "a persisted query of another version",
        "POST",
        {"json": {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}}}},
        "BAD_USER_INPUT",
    ),
    (
        "a forged id",
        "POST",
        {"json": {"query": '{ patient(id: "AAAA") { id } }'}},
        "BAD_USER_INPUT",
    ),
    (
        "a query too expensive",
        "POST",
        {
            "json": {
                "query": "{ patients(first: 100) { edges { node { records(first: 100) { edges "
                "{ node { diagnoses { id } attachments { id } statusHistory { status } } } } } } } "
                "providers(first: 100) { edges { node { patients(first: 100) { edges { node { "
                "records(first: 100) { edges { node { id } } } } } } } } } }"
            }
        },
        "QUERY_TOO_COMPLEX",
    ),
]


@pytest.mark.parametrize(
    ("method", "request_kwargs", "code"),
    [pytest.param(method, kwargs, code, id=name) for name, method, kwargs, code in REQUESTS],
)
async def test_every_refused_request_carries_a_contract_code(
    api: Api, method: str, request_kwargs: dict[str, Any], code: str
) -> None:
    headers = {"Authorization": f"Bearer {api.token()}", **request_kwargs.pop("headers", {})}
    response = await api.client.request(method, "/graphql", headers=headers, **request_kwargs)
    assert 400 <= response.status_code < 500 or response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert body["errors"], body
    assert uncoded_errors(body) == []
    assert {error["extensions"]["code"] for error in body["errors"]} == {code}, body


async def test_a_request_without_a_token_is_unauthenticated_with_a_code(api: Api) -> None:
    response = await api.post(ONE_QUERY)
    body = response.json()
    assert uncoded_errors(body) == []
    assert {error["extensions"]["code"] for error in body["errors"]} == {"UNAUTHENTICATED"}


@pytest.fixture
async def strict_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app with introspection off, only registered operations, and one request per address."""
    app = create_app(
        settings.model_copy(
            update={
                "introspection": False,
                "persisted_queries_only": True,
                "rate_limit_per_address": 2,
            }
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.44", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
            yield client


async def test_refusals_of_a_strict_server_carry_contract_codes(
    api: Api, strict_client: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {api.token()}"}
    introspection = "{ __schema { queryType { name } } }"
    sha = hashlib.sha256(introspection.encode()).hexdigest()
    responses = [
        await strict_client.post("/graphql", json={"query": introspection}, headers=auth),
        await strict_client.post(
            "/graphql",
            json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}}},
            headers=auth,
        ),
    ]
    limited = [await strict_client.post("/graphql", json={"query": ONE_QUERY}) for _ in range(3)]
    codes = set()
    for response in [*responses, *limited]:
        body = response.json()
        assert uncoded_errors(body) == [], body
        codes |= {error["extensions"]["code"] for error in body["errors"]}
    assert {"FORBIDDEN", "BAD_USER_INPUT", "RATE_LIMITED"} <= codes
    assert limited[-1].status_code == 429


@pytest.mark.parametrize(
    "variables",
    [{"first": 2**63}, {"first": 2**70}, {"first": -(2**64)}, {"first": 2**31 - 1}],
    ids=["int64-overflow", "beyond-64-bits", "negative-huge", "int32-max-nested"],
)
async def test_a_huge_page_size_is_refused_with_a_code_and_a_cost_json_can_carry(
    api: Api, variables: dict[str, int]
) -> None:
    query = """query($first: Int) { records(first: $first) { edges { node {
      diagnoses { id } } } } providers(first: $first) { edges { node {
      patients(first: $first) { edges { node { records(first: $first) { totalCount } } } }
    } } } }"""
    response = await api.post(query, variables, token=api.token())
    assert response.status_code < 500, response.text
    body = response.json()
    assert uncoded_errors(body) == []
    assert set(error_codes(body)) <= {"BAD_USER_INPUT", "QUERY_TOO_COMPLEX"}, body
    assert body["extensions"]["cost"] <= 2**53 - 1
