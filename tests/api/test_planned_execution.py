"""Queries run by the breadth-first plan answer exactly what graphql-core's executor answers.

The reference is Strawberry's own execution context (graphql-core completing field by field),
switched in on the same app for the same requests; both answers must be equal byte for byte.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import strawberry
from starlette.routing import Route
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.server.graphql_view import GraphQLView
from models.enums import AttachmentStatus, RecordStatus
from tests.api.test_batching import MOBILE_QUERY

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from tests.api_client import Api
    from tests.factories import Factory


@contextmanager
def graphql_core_executor(app: Starlette) -> Iterator[None]:
    view = next(r.endpoint for r in app.routes if isinstance(r, Route) and r.path == "/graphql")
    assert isinstance(view, GraphQLView)
    schema = view.schema
    assert isinstance(schema, strawberry.Schema)
    planned = schema.execution_context_class
    schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
    try:
        yield
    finally:
        schema.execution_context_class = planned


async def _executions(client: httpx.AsyncClient) -> dict[str, float]:
    found = re.findall(
        r'^medrec_graphql_query_executions_total\{executor="(\w+)"\} (\S+)$',
        (await client.get("/metrics")).text,
        re.MULTILINE,
    )
    return {executor: float(value) for executor, value in found}


async def _both(
    api: Api,
    app: Starlette,
    query: str,
    variables: dict[str, Any],
    token: str,
    *,
    executor: str = "planned",
) -> tuple[bytes, bytes]:
    """Our answer, which ``executor`` gave, and graphql-core's answer."""
    before = await _executions(api.client)
    planned = await api.post(query, variables, token=token)
    after = await _executions(api.client)
    # A one-statement query another test already sent runs prepared: the same plan, unwrapped.
    counted = ("planned", "prepared") if executor == "planned" else (executor,)
    assert sum(after.get(name, 0) - before.get(name, 0) for name in counted) == 1
    with graphql_core_executor(app):
        reference = await api.post(query, variables, token=token)
    assert planned.status_code == reference.status_code == 200
    return planned.content, reference.content


async def _clinic(factory: Factory) -> None:
    doctor, other = await factory.provider(), await factory.provider(specialty=None, email=None)
    alice = await factory.patient(primary_provider_id=doctor["id"], cognito_sub="alice-sub")
    bob = await factory.patient(primary_provider_id=None, email=None, phone=None)
    for patient in (alice, bob):
        for n, status in enumerate((RecordStatus.FINALIZED, RecordStatus.DRAFT)):
            record = await factory.record(
                patient,
                doctor if n else other,
                status=status,
                vital_signs=None if n else {"heartRate": 61, "weightKg": 70.5},
                prescriptions=[] if n else [{"medication": "A", "dosage": "1", "frequency": "d"}],
            )
            await factory.diagnosis(record)
            await factory.diagnosis(record, icd10_code="I10", description="Hypertension")
            await factory.attachment(
                record, status=AttachmentStatus.PENDING_UPLOAD, uploaded_at=None
            )
            await factory.status_event(record)


DETAILED_QUERY = """query Detailed($withRecords: Boolean!, $skipNpi: Boolean!, $n: Int!) {
  __typename
  list: patients(first: $n) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { __typename ...PatientParts } }
  }
  again: patients(first: 1) { edges { node { mrn } } }
  me { subject roles tenantId }
}
fragment PatientParts on Patient {
  id mrn givenName dateOfBirth sex email phone version createdAt updatedAt
  doctor: primaryProvider { __typename id npi @skip(if: $skipNpi) familyName specialty active }
  records(first: 3) @include(if: $withRecords) {
    totalCount
    edges { node { ... on MedicalRecord {
      id recordType visitDate chiefComplaint status finalizedAt followUpDate version
      vitalSigns { heartRate weightKg systolicBp }
      prescriptions { medication dosage durationDays }
      labResults { test unit abnormal }
      statusHistory { sequence status previousStatus changedBy reason }
      diagnoses { id icd10Code description type record { id status } }
      attachments { id fileName contentType sizeBytes checksumSha256 status uploadedAt }
      patient { id familyName }
      provider { id familyName patients(first: 1) { totalCount edges { node { id } } } }
    } } }
  }
}"""


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (MOBILE_QUERY, {"n": 5}),
        (DETAILED_QUERY, {"withRecords": True, "skipNpi": False, "n": 5}),
        (DETAILED_QUERY, {"withRecords": False, "skipNpi": True, "n": 1}),
        (
            """query R { records(first: 3, filter: {status: [FINALIZED, DRAFT]}) {
                 edges { cursor node { id status patient { id } provider { npi } } } } }""",
            {},
        ),
    ],
    ids=["mobile", "detailed", "detailed-skipped", "records"],
)
async def test_planned_answers_equal_graphql_core_answers(
    api: Api, factory: Factory, app: Starlette, query: str, variables: dict[str, Any]
) -> None:
    await _clinic(factory)
    for token in (api.token(), api.token(subject="alice-sub", groups=("patient",))):
        planned, reference = await _both(api, app, query, variables, token)
        assert planned == reference
        assert b'"errors"' not in planned


async def test_errors_and_nulls_are_graphql_cores_own(
    api: Api, factory: Factory, app: Starlette
) -> None:
    await _clinic(factory)
    query = """query E($id: ID!) {
      patients(first: 2) { edges { node { id primaryProvider { id } } } }
      patient(id: $id) { id }
    }"""
    planned, reference = await _both(
        api, app, query, {"id": "not-an-id"}, api.token(), executor="fallback"
    )
    assert planned == reference
    assert b"malformed id" in planned
    assert b'"primaryProvider":null' in planned  # bob's, a nullable relation with no row


async def test_metrics_count_how_each_query_was_executed(
    api: Api, factory: Factory, client: httpx.AsyncClient
) -> None:
    await _clinic(factory)
    # Texts no other test sends: a one-statement query runs prepared once it ran planned.
    mobile = f"# {uuid.uuid4()}\n{MOBILE_QUERY}"
    first = f"# {uuid.uuid4()}\n{{ patients(first: 1) {{ edges {{ node {{ id }} }} }} }}"
    before = await _executions(client)
    await api.data(mobile, {"n": 2})  # planned
    await api.data(mobile, {"n": 3})  # prepared
    body = await api.query('{ patient(id: "nope") { id } }')  # the plan gives up: fallback
    assert body["errors"][0]["message"].endswith("malformed id")
    node_id = (await api.data(first))["patients"]
    await api.data(  # an interface: graphql-core only
        "query N($id: ID!) { node(id: $id) { id } }",
        {"id": node_id["edges"][0]["node"]["id"]},
    )
    await api.data("mutation { __typename }")  # mutations are not counted
    after = await _executions(client)
    assert after.get("planned", 0) - before.get("planned", 0) == 2
    assert after.get("prepared", 0) - before.get("prepared", 0) == 1
    assert after.get("fallback", 0) - before.get("fallback", 0) == 1
    assert after.get("unplanned", 0) - before.get("unplanned", 0) == 1
