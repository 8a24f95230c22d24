"""Errors carry the contract's codes and nothing a caller should not see."""

from __future__ import annotations

import json
import logging

import pytest

from tests.api_client import Api, error_codes
from tests.factories import Factory


async def test_syntax_error_is_bad_user_input(api: Api) -> None:
    body = await api.query("{ patients { edges { node { id } }")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "Syntax Error" in body["errors"][0]["message"]


async def test_unknown_field_is_bad_user_input(api: Api) -> None:
    body = await api.query("{ patients { edges { node { ssn } } } }")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "ssn" in body["errors"][0]["message"]


async def test_variable_of_wrong_type_is_bad_user_input(api: Api) -> None:
    body = await api.query("query($n: Int) { patients(first: $n) { totalCount } }", {"n": "many"})
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_unexpected_failure_is_masked_and_logged_with_request_id(
    api: Api, factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    provider = await factory.provider()
    patient = await factory.patient(given_name="Hildegard")
    # A row the code cannot read: a prescription without its required keys.
    await factory.record(patient, provider, prescriptions=[{"drug": "Hildegard's secret"}])
    with caplog.at_level(logging.ERROR):
        response = await api.post(
            "{ records { edges { node { prescriptions { medication } } } } }",
            token=api.token(),
            headers={"X-Request-ID": "req-42"},
        )
    body = response.json()
    # The stored JSON is read only when the field is selected, so the error is the field's.
    assert body["errors"] == [
        {
            "message": "Internal server error",
            "locations": [{"line": 1, "column": 28}],
            "path": ["records", "edges", 0, "node", "prescriptions"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"},
        }
    ]
    text = json.dumps(body)
    for leaked in ("Hildegard", "KeyError", "Traceback"):
        assert leaked not in text
    logged = [record.getMessage() for record in caplog.records]
    assert any("req-42" in line and "KeyError" in line for line in logged)
    # Strawberry's own error log would print the exception text, which can quote row data.
    assert not any("Hildegard" in line for line in logged)
    assert not [r for r in caplog.records if r.name.startswith("strawberry")]


async def test_health_endpoints(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok"}


async def test_graphql_response_json_when_asked_for(api: Api) -> None:
    accept = {"Accept": "application/graphql-response+json, application/json;q=0.9"}
    ok = await api.post("{ me { subject } }", token=api.token(), headers=accept)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("application/graphql-response+json")
    assert ok.json()["data"]["me"]["subject"] == "admin-subject"

    invalid = await api.post("{ me { nope } }", token=api.token(), headers=accept)
    assert invalid.status_code == 400
    assert error_codes(invalid.json()) == ["BAD_USER_INPUT"]

    # A missing token stops the operation: 401 with an RFC 6750 challenge.
    refused = await api.post("{ me { subject } }", headers=accept)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert error_codes(refused.json()) == ["UNAUTHENTICATED"]

    plain = await api.post("{ me { nope } }", token=api.token())
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/json")
