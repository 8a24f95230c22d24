"""One pipeline runs every operation: the same operation sent over HTTP and over a WebSocket gets
the same answer (data, error codes and messages, ``extensions.cost``) and leaves the same audit
row, whether it reads data, is refused by validation, by the cost limit or by a resolver."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from app.domain.opaque_ids import NodeType
from tests.api_client import audit_rows
from tests.subscriptions.conftest import connect
from tests.subscriptions.helpers import IDS

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory
    from tests.subscriptions.conftest import Server

READ = """query Read($id: ID!) {
  node(id: $id) { ... on Patient { id mrn records(first: 5) { totalCount } } } }"""
INVALID = "query Invalid { patients(first: 1) { edges { node { noSuchField } } } }"
# 100 patients x 100 records x 25 diagnoses is over the admin role's 50000.
TOO_COSTLY = """query Costly { patients(first: 100) { edges { node {
  records(first: 100) { edges { node { diagnoses { id } } } } } } } }"""
MALFORMED_ID = 'query Malformed { node(id: "not-an-id") { id } }'
MUTATION = """mutation Refused {
  changeRecordStatus(input: {id: "nope", status: FINALIZED, expectedVersion: 1}) {
    record { id } } }"""

# The columns that differ by transport alone.
_PER_REQUEST = {"id", "request_id", "client_address", "occurred_at"}


def _comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in _PER_REQUEST} for row in rows]


async def _over_http(
    server: Server, token: str, request_id: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
        )
    body: dict[str, Any] = response.json()
    return body


async def _over_websocket(
    server: Server, token: str, request_id: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    async with connect(server, token, additional_headers={"X-Request-ID": request_id}) as socket:
        assert (await socket.next_message())["type"] == "connection_ack"
        operation = await socket.subscribe(query, variables)
        message = await socket.next_message()
        assert message["id"] == operation, message
        if message["type"] == "error":  # refused before execution: errors only
            return {"errors": message["payload"]}
        assert message["type"] == "next", message
        assert await socket.next_message() == {"id": operation, "type": "complete"}
        payload: dict[str, Any] = message["payload"]
        return payload


@pytest.mark.parametrize(
    ("query", "expected_code"),
    [
        (READ, None),
        (INVALID, "BAD_USER_INPUT"),
        (TOO_COSTLY, "QUERY_TOO_COMPLEX"),
        (MALFORMED_ID, "BAD_USER_INPUT"),
        (MUTATION, "BAD_USER_INPUT"),
    ],
    ids=["read", "invalid", "too-costly", "malformed-id", "refused-mutation"],
)
async def test_an_operation_gets_the_same_answer_and_audit_row_over_http_and_websocket(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
    query: str,
    expected_code: str | None,
) -> None:
    patient = await factory.patient()
    await factory.record(patient, await factory.provider())
    variables = {"id": IDS.encode_id(NodeType.PATIENT, patient["id"])}
    token = api.token()
    http_id, socket_id = (f"one-pipeline-{uuid.uuid4().hex}" for _ in range(2))

    over_http = await _over_http(servers[0], token, http_id, query, variables)
    over_socket = await _over_websocket(servers[0], token, socket_id, query, variables)

    codes = {error["extensions"]["code"] for error in over_http.get("errors") or []}
    assert codes == ({expected_code} if expected_code else set())
    if query is MUTATION:
        # Each answer's own position in the database's history (app/data/replicas.py).
        tokens = [answer["extensions"].pop("consistency") for answer in (over_http, over_socket)]
        assert IDS.decode_consistency(tokens[0]) <= IDS.decode_consistency(tokens[1])
    if "data" in over_socket or expected_code is None:
        assert over_socket == over_http
    else:
        # graphql-transport-ws sends a request refused before execution as an `error`
        # message, which carries the errors alone.
        assert over_socket["errors"] == over_http["errors"]
        assert over_http["data"] is None
    if expected_code is None:
        assert over_http["data"]["node"]["mrn"] == patient["mrn"]
    http_rows = await audit_rows(sessionmaker, http_id)
    socket_rows = await audit_rows(sessionmaker, socket_id)
    assert len(http_rows) == 1
    assert _comparable(socket_rows) == _comparable(http_rows)
