"""Recorded one-statement plans (``StatementPlans`` in schema/execution.py).

The first request of a document runs on the executor and records its plan; later ones are
answered by the recorded statement. Every answer, audit row and request-log line must be the one
the executor's run gives, and every request the statement declines must get the executor's
answer.
Documents carry a comment naming their test: the app is shared, and a text another test sent
would already be recorded.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from app.domain.opaque_ids import NodeType
from app.server.main import create_app
from tests.api.test_planned_execution import graphql_core_executor
from tests.api.test_sql_trees import ONE_QUERY, _audit_rows, _clinic, _tokens, _tree_statements
from tests.api_client import Api, count_statements, error_codes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from starlette.applications import Starlette

    from app.ops.dev_issuer import LocalTokenIssuer
    from app.settings import Settings
    from tests.factories import Factory

NESTED = """query Nested($n: Int!) {
  patients(first: $n) { edges { node { id records(first: 50) { edges { node { id } } } } } }
}"""


async def _executions(client: httpx.AsyncClient, executor: str) -> float:
    metrics = (await client.get("/metrics")).text
    found = re.search(
        rf'^medrec_graphql_query_executions_total\{{executor="{executor}"\}} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


def _named(query: str, test: str) -> str:
    return f"# {test} {uuid.uuid4()}\n{query}"


@pytest.mark.parametrize("role", ["admin", "provider", "patient"])
async def test_a_recorded_query_is_answered_as_the_pipeline_answers_it(
    api: Api,
    factory: Factory,
    app: Starlette,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: str,
    role: str,
) -> None:
    clinic = await _clinic(factory)
    await factory.provider(cognito_sub="doctor-sub")  # the provider token's own row
    token = _tokens(api)[role]
    alice, bob = (
        app.state.services.ids.encode_id(NodeType.PATIENT, clinic[name]["id"])
        for name in ("alice", "bob")
    )
    query = _named(ONE_QUERY, "recorded")
    for patient in (alice, bob):  # bob: null for the patient token, an audit row naming nobody
        prepared = await _executions(client, "prepared")
        first = await api.post(query, {"id": patient}, token=token)
        piped_row = (await _audit_rows(sessionmaker, tenant_id))[-1]
        assert await _executions(client, "prepared") == prepared + (patient == bob)
        async with count_statements(app.state.services.engine) as log:
            again = await api.post(query, {"id": patient}, token=token)
        assert await _executions(client, "prepared") == prepared + 1 + (patient == bob)
        assert again.status_code == first.status_code == 200
        assert again.content == first.content
        assert b'"errors"' not in again.content
        assert again.headers["content-type"] == first.headers["content-type"]
        assert again.headers["x-request-id"] != first.headers["x-request-id"]
        # The tree and the audit row; nothing else (the caller resolved included, for every
        # role but the admin, whose token names its tenant).
        assert len(_tree_statements(log)) == 1
        assert log.statements[-1].startswith("INSERT INTO audit_events")
        assert log.count == (2 if role == "admin" else 3)
        rows = await _audit_rows(sessionmaker, tenant_id)
        assert rows[-1] == piped_row
        assert rows[-2] == piped_row


async def test_the_request_log_line_is_the_pipelines(
    api: Api,
    factory: Factory,
    app: Starlette,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clinic = await _clinic(factory)
    alice = app.state.services.ids.encode_id(NodeType.PATIENT, clinic["alice"]["id"])
    query = _named(ONE_QUERY, "logged")
    prepared = await _executions(client, "prepared")
    with caplog.at_level(logging.INFO, logger="medrec.request"):
        for _ in range(2):
            await api.post(query, {"id": alice}, token=api.token())
    assert await _executions(client, "prepared") == prepared + 1
    lines = [
        {k: v for k, v in r.fields.items() if k not in ("request_id", "duration_ms")}  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "medrec.request"
    ]
    assert len(lines) == 2
    assert lines[0] == lines[1]
    assert lines[1]["operation"] == "One"
    assert lines[1]["outcome"] == "ok"
    assert lines[1]["cost"] > 0


async def test_requests_the_prepared_path_declines_get_the_pipelines_answers(
    api: Api,
    factory: Factory,
    app: Starlette,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: str,
) -> None:
    clinic = await _clinic(factory)
    alice = app.state.services.ids.encode_id(NodeType.PATIENT, clinic["alice"]["id"])
    one = _named(ONE_QUERY, "declined")
    nested = _named(NESTED, "declined")
    patient = _tokens(api)["patient"]
    await api.data(one, {"id": alice})
    await api.data(nested, {"n": 1}, token=patient)
    declined: list[tuple[str, dict[str, Any], str | None, str]] = [
        (one, {"id": None}, api.token(), "BAD_USER_INPUT"),  # does not coerce
        (one, {"id": "not-an-id"}, api.token(), "BAD_USER_INPUT"),
        (one, {"id": alice}, None, "UNAUTHENTICATED"),
        # 1 + 50 x (1 + 1 + 1 + 1 + 50 x 2) is over the patient role's 5000.
        (nested, {"n": 50}, patient, "QUERY_TOO_COMPLEX"),
    ]
    for query, variables, token, code in declined:
        prepared = await _executions(client, "prepared")
        before = await _audit_rows(sessionmaker, tenant_id)
        answer = await api.post(query, variables, token=token)
        assert await _executions(client, "prepared") == prepared
        assert error_codes(answer.json()) == [code]
        ours = await _audit_rows(sessionmaker, tenant_id)
        with graphql_core_executor(app):  # the pipeline alone
            reference = await api.post(query, variables, token=token)
        pipeline = await _audit_rows(sessionmaker, tenant_id)
        assert answer.content == reference.content
        assert ours[len(before) :] == pipeline[len(ours) :]


@pytest.fixture
async def shallow_app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings.model_copy(update={"query_max_depth": 2}))
    async with application.router.lifespan_context(application):
        yield application


async def test_an_operation_recorded_by_one_app_is_validated_again_by_another(
    api: Api,
    factory: Factory,
    app: Starlette,
    shallow_app: Starlette,
    issuer: LocalTokenIssuer,
    tenant_id: str,
) -> None:
    clinic = await _clinic(factory)
    alice = app.state.services.ids.encode_id(NodeType.PATIENT, clinic["alice"]["id"])
    query = _named(ONE_QUERY, "per-app")
    for _ in range(2):
        await api.data(query, {"id": alice})
    transport = httpx.ASGITransport(app=shallow_app, client=("203.0.113.8", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
        shallow = Api(client, issuer, tenant_id)
        answer = await shallow.post(query, {"id": alice}, token=shallow.token())
    assert error_codes(answer.json()) == ["QUERY_TOO_COMPLEX"]


PAGED = """query Paged($id: ID!, $n: Int!) {
  patient(id: $id) { id records(first: $n) { edges { node { id status } } } }
}"""


async def test_a_selection_compiled_for_new_variables_is_still_prepared(
    api: Api, factory: Factory, app: Starlette, client: httpx.AsyncClient
) -> None:
    """A page size below the root is part of the statement's shape: a value not seen before
    compiles the selection again, from the document, on the prepared path too."""
    clinic = await _clinic(factory)
    alice = app.state.services.ids.encode_id(NodeType.PATIENT, clinic["alice"]["id"])
    query = _named(PAGED, "recompiled")
    await api.data(query, {"id": alice, "n": 1})  # recorded by the pipeline
    for n in (2, 1, 3):
        prepared = await _executions(client, "prepared")
        answer = await api.post(query, {"id": alice, "n": n}, token=api.token())
        assert await _executions(client, "prepared") == prepared + 1
        with graphql_core_executor(app):
            reference = await api.post(query, {"id": alice, "n": n}, token=api.token())
        assert answer.content == reference.content
        edges = answer.json()["data"]["patient"]["records"]["edges"]
        assert 0 < len(edges) <= n


async def test_a_document_with_directives_is_not_prepared(
    api: Api, factory: Factory, app: Starlette, client: httpx.AsyncClient
) -> None:
    """@skip and @include make the root field's selection depend on the variables."""
    clinic = await _clinic(factory)
    alice = app.state.services.ids.encode_id(NodeType.PATIENT, clinic["alice"]["id"])
    query = _named(
        "query Skips($id: ID!, $hide: Boolean!) { patient(id: $id) { id mrn @skip(if: $hide) } }",
        "directives",
    )
    prepared = await _executions(client, "prepared")
    planned = await _executions(client, "planned")
    shown = await api.data(query, {"id": alice, "hide": False})
    hidden = await api.data(query, {"id": alice, "hide": True})
    assert "mrn" in shown["patient"]
    assert hidden["patient"] == {"id": alice}
    assert await _executions(client, "prepared") == prepared
    assert await _executions(client, "planned") == planned + 2


async def test_a_plan_is_kept_per_role_class(
    api: Api,
    factory: Factory,
    app: Starlette,
    client: httpx.AsyncClient,
) -> None:
    """The caller's role class is part of a plan's key: a text recorded for one role is run by
    the executor, and recorded, the first time another role sends it."""
    clinic = await _clinic(factory)
    await factory.provider(cognito_sub="doctor-sub")
    tokens = _tokens(api)
    alice = app.state.services.ids.encode_id(NodeType.PATIENT, clinic["alice"]["id"])
    query = _named(ONE_QUERY, "per-role")
    for role, recorded_before in (("admin", False), ("admin", True), ("provider", False)):
        prepared = await _executions(client, "prepared")
        planned = await _executions(client, "planned")
        response = await api.post(query, {"id": alice}, token=tokens[role])
        assert b'"errors"' not in response.content
        assert await _executions(client, "prepared") == prepared + recorded_before
        assert await _executions(client, "planned") == planned + (not recorded_before)
