"""Values PostgreSQL cannot take are the caller's mistake: BAD_USER_INPUT naming the argument,
refused before any statement, the pooled connection kept, nothing logged as an outage."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.data.pagination import KeysetOrder
from app.data.repositories import audit_events, patients, providers, records
from app.domain.opaque_ids import NodeType, OpaqueIds
from app.settings import Settings
from tests.api.test_mutation_validation import snapshot
from tests.api_client import Api, error_codes
from tests.factories import Factory

# An offset carries these out of the years 1..9999 once converted to UTC.
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"]

RECORDS = """query($filter: RecordFilter, $after: String) {
  records(filter: $filter, after: $after) { totalCount edges { node { id } } } }"""
PATIENT_RECORDS = """query($id: ID!, $filter: RecordFilter) {
  patient(id: $id) { records(filter: $filter) { edges { node { id } } } } }"""
AUDIT_EVENTS = """query($filter: AuditEventFilter, $after: String) {
  auditEvents(filter: $filter, after: $after) { edges { node { id } } } }"""
PATIENTS = """query($after: String) { patients(after: $after) { edges { node { id } } } }"""
PROVIDERS = """query($after: String) { providers(after: $after) { edges { node { id } } } }"""
ORDERS: dict[str, KeysetOrder] = {
    "record": records.RECORD_ORDER,
    "audit": audit_events.AUDIT_ORDER,
    "patient": patients.PATIENT_ORDER,
    "provider": providers.PROVIDER_ORDER,
}
IDS = OpaqueIds("medrec-opaque-id-v1")
CREATE_RECORD = """mutation($input: CreateRecordInput!) {
  createRecord(input: $input) { record { id } } }"""


class _ConnectionWatch:
    """Connections the API's pool discarded, and those it opened, while the block runs."""

    def __init__(self, app: Starlette) -> None:
        self.pool = app.state.services.read_engine.sync_engine.pool
        self.invalidated = self.opened = 0

    def _invalidate(self, *_: object) -> None:
        self.invalidated += 1

    def _connect(self, *_: object) -> None:
        self.opened += 1

    def __enter__(self) -> _ConnectionWatch:
        event.listen(self.pool, "invalidate", self._invalidate)
        event.listen(self.pool, "connect", self._connect)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.pool, "invalidate", self._invalidate)
        event.remove(self.pool, "connect", self._connect)


@pytest.fixture
def watched(app: Starlette, caplog: pytest.LogCaptureFixture) -> Iterator[_ConnectionWatch]:
    """The block keeps the pool's connections and logs nothing at ERROR."""
    with caplog.at_level(logging.WARNING), _ConnectionWatch(app) as watch:
        yield watch
    assert watch.invalidated == 0
    assert watch.opened == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def refused(api: Api, query: str, variables: dict[str, Any], argument: str) -> None:
    body = await api.query(query, variables)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    message = body["errors"][0]["message"]
    assert message.startswith(f"{argument}: "), message
    for value in variables.values():  # the rejected value is not echoed
        if isinstance(value, dict):
            assert not any(str(v) in message for v in value.values()), message


@pytest.fixture
async def warmed(api: Api, factory: Factory) -> dict[str, Any]:
    """A patient with a record, read once, so the pool holds the connections the tests use."""
    provider = await factory.provider()
    patient = await factory.patient(primary_provider_id=provider["id"])
    await factory.record(patient, provider)
    await api.data(RECORDS)
    return {"patient": patient, "provider": provider}


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("bound", ["visitedBefore", "visitedAfter"])
async def test_an_out_of_range_record_filter_time_is_bad_user_input(
    api: Api, warmed: dict[str, Any], watched: _ConnectionWatch, bound: str, value: str
) -> None:
    await refused(api, RECORDS, {"filter": {bound: value}}, f"filter.{bound}")
    # A nested connection (the one-statement tree path) refuses it the same way.
    patient_id = IDS.encode_id(NodeType.PATIENT, warmed["patient"]["id"])
    body = await api.query(PATIENT_RECORDS, {"id": patient_id, "filter": {bound: value}})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"].startswith(f"filter.{bound}: ")


@pytest.mark.parametrize("value", OUT_OF_RANGE)
async def test_an_out_of_range_time_written_in_the_document_is_bad_user_input(
    api: Api, warmed: dict[str, Any], watched: _ConnectionWatch, value: str
) -> None:
    body = await api.query(f'{{ records(filter: {{visitedBefore: "{value}"}}) {{ totalCount }} }}')
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"] == "filter.visitedBefore: out of range"


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("bound", ["occurredBefore", "occurredAfter"])
async def test_an_out_of_range_audit_filter_time_is_bad_user_input(
    api: Api, warmed: dict[str, Any], watched: _ConnectionWatch, bound: str, value: str
) -> None:
    await refused(api, AUDIT_EVENTS, {"filter": {bound: value}}, f"filter.{bound}")


@pytest.fixture
def forger(settings: Settings) -> OpaqueIds:
    """Cursors signed with the key the server runs with (the default one, in the tests)."""
    return OpaqueIds(settings.opaque_id_key)


@pytest.mark.parametrize(
    ("query", "kind", "values"),
    [
        (RECORDS, "record", ("9999-12-31T23:59:59-14:00", "00000000-0000-0000-0000-000000000000")),
        (RECORDS, "record", ("0001-01-01T00:00:00+01:00", "00000000-0000-0000-0000-000000000000")),
        (AUDIT_EVENTS, "audit", ("9999-12-31T23:59:59-14:00", 1)),
        (AUDIT_EVENTS, "audit", ("2026-01-01T00:00:00+00:00", 2**70)),
        (AUDIT_EVENTS, "audit", ("2026-01-01T00:00:00+00:00", -(2**64))),
        (
            PATIENTS,
            "patient",
            ("9999-12-31T23:59:59-14:00", "00000000-0000-0000-0000-000000000000"),
        ),
        (PROVIDERS, "provider", ("a\x00b", "c", "00000000-0000-0000-0000-000000000000")),
        (PROVIDERS, "provider", ("a\ud800b", "c", "00000000-0000-0000-0000-000000000000")),
    ],
    ids=[
        "record-year-9999",
        "record-year-1",
        "audit-year-9999",
        "audit-huge-id",
        "audit-negative-id",
        "patient-year-9999",
        "provider-nul",
        "provider-surrogate",
    ],
)
async def test_a_forged_cursor_carrying_a_value_postgresql_cannot_take_is_bad_user_input(
    api: Api,
    warmed: dict[str, Any],
    watched: _ConnectionWatch,
    forger: OpaqueIds,
    query: str,
    kind: str,
    values: tuple[Any, ...],
) -> None:
    cursor = forger.encode_cursor(ORDERS[kind].kind, values)
    await refused(api, query, {"after": cursor}, "after")


async def test_a_cursor_signed_with_the_key_but_not_json_is_bad_user_input(
    api: Api, warmed: dict[str, Any], watched: _ConnectionWatch, forger: OpaqueIds
) -> None:
    for payload in (b"\xff\xfe", b"[" * 100_000, b"not json"):
        cursor = forger._seal(b"cursor", payload)  # a forger's own bytes
        await refused(api, RECORDS, {"after": cursor}, "after")


async def test_a_search_with_nul_is_bad_user_input(
    api: Api, warmed: dict[str, Any], watched: _ConnectionWatch
) -> None:
    query = "query($f: PatientFilter) { patients(filter: $f) { totalCount } }"
    await refused(api, query, {"f": {"search": "Al\x00"}}, "filter.search")


@pytest.mark.parametrize("value", OUT_OF_RANGE)
async def test_an_out_of_range_visit_date_changes_nothing(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    warmed: dict[str, Any],
    watched: _ConnectionWatch,
    value: str,
) -> None:
    before = await snapshot(sessionmaker, factory.tenant_id)
    variables = {
        "input": {
            "patientId": IDS.encode_id(NodeType.PATIENT, warmed["patient"]["id"]),
            "providerId": IDS.encode_id(NodeType.PROVIDER, warmed["provider"]["id"]),
            "recordType": "CONSULTATION",
            "visitDate": value,
        }
    }
    body = await api.query(CREATE_RECORD, variables)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"].startswith("input.visitDate: ")
    assert await snapshot(sessionmaker, factory.tenant_id) == before
