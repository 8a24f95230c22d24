"""``/metrics``: the Prometheus text format, with the API's numbers and no patient data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from app.server.observability import (
    Observability,
    ObservabilityMiddleware,
    _cost_of,
)
from app.server.services import Services
from schema.observation import count_rate_limit_rejection
from tests.api_client import Api, error_codes

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FAMILY_NAME = "Pemberquist"
GIVEN_NAME = "Ondrelle"
CREATE_PATIENT = """mutation ObsMetricsCreate($input: CreatePatientInput!) {
  createPatient(input: $input) { patient { id familyName } } }"""
PATIENTS = """query ObsMetricsPatients($search: String) {
  patients(first: 5, filter: {search: $search}) { edges { node { givenName familyName } } } }"""


async def scrape(client: httpx.AsyncClient) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_after_requests(api: Api, client: httpx.AsyncClient) -> None:
    _, before = await scrape(client)
    created = await api.post(
        CREATE_PATIENT,
        {
            "input": {
                "mrn": "MRN-OBS-METRICS",
                "givenName": GIVEN_NAME,
                "familyName": FAMILY_NAME,
                "dateOfBirth": "1971-03-04",
                "sex": "MALE",
            }
        },
        token=api.token(),
    )
    assert "errors" not in created.json()
    listed = await api.post(PATIENTS, {"search": FAMILY_NAME}, token=api.token())
    assert listed.json()["data"]["patients"]["edges"][0]["node"]["givenName"] == GIVEN_NAME
    refused = await api.post(PATIENTS, {"search": FAMILY_NAME})  # no token
    assert error_codes(refused.json()) == ["UNAUTHENTICATED"]

    text, after = await scrape(client)

    def grew(name: str, by: float = 1, **labels: str) -> bool:
        return value(after, name, **labels) - value(before, name, **labels) == by

    requests = "medrec_graphql_requests_total"
    assert grew(requests, operation="ObsMetricsCreate", outcome="ok")
    assert grew(requests, operation="ObsMetricsPatients", outcome="ok")
    # Signed in callers gave the name its label before; the refused request may use it too.
    assert grew(requests, operation="ObsMetricsPatients", outcome="denied")

    latency = "medrec_graphql_request_duration_seconds"
    assert grew(f"{latency}_count", operation="ObsMetricsCreate")
    assert grew(f"{latency}_count", by=2, operation="ObsMetricsPatients")
    assert grew(f"{latency}_bucket", operation="ObsMetricsCreate", le="+Inf")
    assert value(after, f"{latency}_sum", operation="ObsMetricsCreate") > 0

    cost = listed.json().get("extensions", {}).get("cost")
    if cost is not None:  # reported by the query cost limit
        assert grew("medrec_graphql_query_cost_count", by=2, operation="ObsMetricsPatients")
        assert value(after, "medrec_graphql_query_cost_sum", operation="ObsMetricsPatients") > 0

    assert ("medrec_db_pool_connections_in_use", (("pool", "primary"),)) in after
    assert value(after, "medrec_db_pool_size", pool="primary") >= 1
    assert ("medrec_db_pool_waits_total", (("pool", "primary"),)) in after
    assert ("medrec_db_pool_timeouts_total", (("pool", "primary"),)) in after
    assert ("medrec_active_subscriptions", ()) in after
    assert value(after, "medrec_jwks_refreshes_total") >= 1
    assert "# TYPE medrec_rate_limit_rejections_total counter" in text
    assert "# TYPE process_cpu_seconds_total counter" in text

    for secret in (FAMILY_NAME, GIVEN_NAME, "MRN-OBS-METRICS", api.token().split(".")[1]):
        assert secret not in text


async def test_gauges_read_the_services_at_scrape_time(
    app: Starlette, client: httpx.AsyncClient, tenant_id: str
) -> None:
    services: Services = app.state.services
    _, idle = await scrape(client)
    bell = services.status_stream.subscribe(tenant_id)
    try:
        async with services.engine.connect():
            _, busy = await scrape(client)
    finally:
        services.status_stream.unsubscribe(bell)
    assert value(busy, "medrec_active_subscriptions") == (
        value(idle, "medrec_active_subscriptions") + 1
    )
    assert value(busy, "medrec_db_pool_connections_in_use", pool="primary") >= 1


async def test_unknown_and_unauthenticated_operation_names_get_no_label_of_their_own(
    api: Api, client: httpx.AsyncClient
) -> None:
    await api.post("query ObsNeverSignedIn { me { subject } }")
    await api.post("{ me { subject } }", token=api.token())
    text, _ = await scrape(client)
    assert "ObsNeverSignedIn" not in text
    assert 'operation="other"' in text
    assert 'operation="anonymous"' in text


def test_operation_labels_are_capped() -> None:
    metrics = Observability(operation_label_limit=2)
    assert metrics.operation_label("A", authenticated=True) == "A"
    assert metrics.operation_label("B", authenticated=False) == "other"
    assert metrics.operation_label("B", authenticated=True) == "B"
    assert metrics.operation_label("C", authenticated=True) == "other"
    assert metrics.operation_label("A", authenticated=False) == "A"
    assert metrics.operation_label(None, authenticated=True) == "anonymous"


def test_apps_have_registries_of_their_own() -> None:
    first, second = Observability(), Observability()
    first.requests.labels("A", "ok").inc()
    assert b'operation="A"' in first.exposition(None)
    assert b'operation="A"' not in second.exposition(None)


async def test_rate_limit_rejections_are_counted_during_a_request() -> None:
    metrics = Observability()

    async def refusing(scope: Scope, receive: Receive, send: Send) -> None:
        count_rate_limit_rejection("address")
        count_rate_limit_rejection("something else")
        await PlainTextResponse("slow down", status_code=429)(scope, receive, send)

    app: Callable[[Scope, Receive, Send], Awaitable[None]] = ObservabilityMiddleware(
        refusing, metrics
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
        assert (await client.post("/graphql")).status_code == 429
    count_rate_limit_rejection("subject")  # outside a request: nothing to count it in
    text = metrics.exposition(None).decode()
    assert 'medrec_rate_limit_rejections_total{limit="address"} 1.0' in text
    assert 'medrec_rate_limit_rejections_total{limit="other"} 1.0' in text
    assert 'limit="subject"' not in text
    assert 'medrec_graphql_requests_total{operation="anonymous",outcome="denied"} 1.0' in text


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        ({"cost": 31}, 31.0),
        ({"cost": 0}, 0.0),
        ({"cost": {"requested": 12, "limit": 50}}, 12.0),
        ({"cost": True}, None),
        ({"cost": "31"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_cost_is_read_from_the_result_extensions(extensions: Any, expected: float | None) -> None:
    assert _cost_of(extensions) == expected
