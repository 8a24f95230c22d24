"""GraphQL over HTTP with `Accept: application/graphql-response+json`: request errors carry no
`data`, and an operation refused for want of a caller is a 401 with an RFC 6750 challenge, while
`application/json` answers as it always did."""

from __future__ import annotations

import pytest

from tests.api_client import Api, error_codes

GRAPHQL_RESPONSE_JSON = {"Accept": "application/graphql-response+json"}
JSON = {"Accept": "application/json"}
PATIENTS = "{ patients { totalCount } }"
ME = "{ me { subject } }"

REQUEST_ERRORS = [
    pytest.param("{ patients {", id="parse-error"),
    pytest.param("{ nope }", id="validation-error"),
    pytest.param("query($n: Int!) { patients(first: $n) { totalCount } }", id="coercion-error"),
]


@pytest.mark.parametrize("query", REQUEST_ERRORS)
async def test_a_request_error_has_no_data_and_is_a_400(api: Api, query: str) -> None:
    response = await api.post(query, token=api.token(), headers=GRAPHQL_RESPONSE_JSON)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    body = response.json()
    assert "data" not in body, body
    assert error_codes(body) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("query", REQUEST_ERRORS)
async def test_a_request_error_as_application_json_keeps_data_null_and_200(
    api: Api, query: str
) -> None:
    response = await api.post(query, token=api.token(), headers=JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["data"] is None
    assert error_codes(body) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("query", [PATIENTS, ME])
@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        pytest.param(None, "Bearer", id="no-token"),
        pytest.param("Basic bWU6c2VjcmV0", "Bearer", id="another-scheme"),
        pytest.param("Bearer not-a-jwt", 'Bearer error="invalid_token"', id="garbage-token"),
    ],
)
async def test_a_missing_or_refused_token_is_a_401_with_a_bearer_challenge(
    api: Api, query: str, authorization: str | None, challenge: str
) -> None:
    headers = dict(GRAPHQL_RESPONSE_JSON)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await api.post(query, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == challenge
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


async def test_a_well_signed_but_expired_token_is_an_invalid_token(api: Api) -> None:
    expired = api.token(claims={"exp": 1_000_000_000})
    response = await api.post(PATIENTS, token=expired, headers=GRAPHQL_RESPONSE_JSON)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    body = response.json()
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "expired" in body["errors"][0]["message"]


@pytest.mark.parametrize("token", [None, "not-a-jwt"], ids=["no-token", "garbage-token"])
async def test_a_missing_or_refused_token_as_application_json_is_a_200(
    api: Api, token: str | None
) -> None:
    response = await api.post(PATIENTS, token=token, headers=JSON)
    assert response.status_code == 200, response.text
    assert "www-authenticate" not in response.headers
    body = response.json()
    assert body["data"] is None
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_public_field_needs_no_token_and_stays_200(api: Api) -> None:
    for token in (None, "not-a-jwt"):
        response = await api.post("{ __typename }", token=token, headers=GRAPHQL_RESPONSE_JSON)
        assert response.status_code == 200, response.text
        assert "www-authenticate" not in response.headers
        assert response.json()["data"] == {"__typename": "Query"}


async def test_partial_data_beside_a_refused_field_stays_200(api: Api) -> None:
    """A response whose data is not null is a 2xx (GraphQL over HTTP), refusals or not."""
    query = '{ __typename patient(id: "UGF0aWVudDox") { id } }'
    response = await api.post(query, headers=GRAPHQL_RESPONSE_JSON)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] == {"__typename": "Query", "patient": None}
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_signed_in_caller_is_answered_as_before(api: Api) -> None:
    response = await api.post(PATIENTS, token=api.token(), headers=GRAPHQL_RESPONSE_JSON)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"patients": {"totalCount": 0}}


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("application/graphql-response+json, application/json;q=0.9", "graphql-response+json"),
        ("application/json, application/graphql-response+json", "graphql-response+json"),
        ("application/json, application/graphql-response+json;q=0.5", "json"),
        ("application/graphql-response+json;q=0, */*", "json"),
        ("*/*", "json"),
    ],
)
async def test_the_media_type_follows_the_accept_header_s_preference(
    api: Api, accept: str, media_type: str
) -> None:
    response = await api.post(PATIENTS, headers={"Accept": accept})
    assert response.headers["content-type"].startswith(f"application/{media_type}")
    assert response.status_code == (401 if media_type == "graphql-response+json" else 200)
