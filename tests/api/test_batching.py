"""Nested reads cost one SQL statement per relation level, never one per row.

These are the DataLoaders' reads. Root fields whose whole selection PostgreSQL can write as JSON
are answered by one statement instead (tests/api/test_sql_trees.py); the queries here select
``pageInfo`` on a nested list, which that statement does not write, so they go through the
DataLoaders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event

from tests.api_client import Api, count_statements

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from tests.factories import Factory

MOBILE_QUERY = """query Mobile($n: Int!) {
  patients(first: $n) { edges { node { id mrn givenName familyName
    primaryProvider { id npi familyName }
    records(first: 10) { edges { node { id status visitDate
      provider { id familyName }
      diagnoses { icd10Code type }
      attachments { fileName status } } } } } } }
}"""
# The same query with the nested pageInfo only the DataLoaders answer.
LOADER_MOBILE_QUERY = MOBILE_QUERY.replace(
    "records(first: 10) {", "records(first: 10) { pageInfo { hasNextPage }", 1
)
assert LOADER_MOBILE_QUERY != MOBILE_QUERY


async def _clinic(factory: Factory, patients: int, records_each: int) -> None:
    providers = [await factory.provider() for _ in range(3)]
    for p in range(patients):
        patient = await factory.patient(primary_provider_id=providers[p % 3]["id"])
        for r in range(records_each):
            record = await factory.record(patient, providers[r % 3])
            await factory.diagnosis(record)
            if r % 2:
                await factory.attachment(record)


async def test_mobile_query_statement_count_does_not_grow_with_page_size(
    api: Api, factory: Factory, app: Starlette
) -> None:
    await _clinic(factory, patients=50, records_each=2)
    engine = app.state.services.engine
    counts = {}
    for n in (5, 50):
        async with count_statements(engine) as log:
            data = await api.data(LOADER_MOBILE_QUERY, {"n": n})
        patients = data["patients"]["edges"]
        assert len(patients) == n
        assert all(len(p["node"]["records"]["edges"]) == 2 for p in patients)
        assert all(p["node"]["primaryProvider"] is not None for p in patients)
        counts[n] = log.count
    assert counts[5] == counts[50]
    # viewer links, patients, primaryProvider, records, record.provider, diagnoses, attachments
    assert counts[50] <= 8


async def test_batched_statements_do_not_depend_on_batch_size(
    api: Api, factory: Factory, app: Starlette
) -> None:
    await _clinic(factory, patients=12, records_each=1)
    engine = app.state.services.engine
    texts: list[set[str]] = []
    for n in (2, 12):
        async with count_statements(engine) as log:
            await api.data(LOADER_MOBILE_QUERY, {"n": n})
        texts.append(set(log.statements))
    # `= ANY(:ids)` keeps statement text (and so prepared statements) identical across batch sizes.
    assert texts[0] == texts[1]
    assert any("= ANY" in s.upper() for s in texts[0])


async def test_totals_cost_statements_only_when_selected(
    api: Api, factory: Factory, app: Starlette
) -> None:
    await _clinic(factory, patients=4, records_each=2)
    engine = app.state.services.engine
    async with count_statements(engine) as without:
        await api.data(
            "{ patients { edges { node {"
            " records { pageInfo { hasNextPage } edges { node { id } } } } } } }"
        )
    async with count_statements(engine) as with_totals:
        data = await api.data(
            "{ patients { totalCount edges { node {"
            " records { totalCount edges { node { id } } } } } } }"
        )
    assert data["patients"]["totalCount"] == 4
    assert {e["node"]["records"]["totalCount"] for e in data["patients"]["edges"]} == {2}
    assert with_totals.count == without.count + 2


async def test_a_request_reads_through_one_pooled_connection(
    api: Api, factory: Factory, app: Starlette
) -> None:
    await _clinic(factory, patients=6, records_each=2)
    pool = app.state.services.engine.sync_engine.pool
    checkouts: list[object] = []

    def checked_out(dbapi_connection: object, *_: object) -> None:
        checkouts.append(dbapi_connection)

    event.listen(pool, "checkout", checked_out)
    try:
        data = await api.data(LOADER_MOBILE_QUERY, {"n": 6})
    finally:
        event.remove(pool, "checkout", checked_out)
    assert len(data["patients"]["edges"]) == 6
    # The caller and every DataLoader batch: one checkout, not one per statement; the audit
    # row's flush takes its own (app/data/audit_writer.py).
    assert len(checkouts) == 2


FRAGMENT_QUERY = """query Mobile($n: Int!) {
  patients(first: $n) { edges { node { ...PatientParts } } }
}
fragment PatientParts on Patient { id mrn givenName familyName
  primaryProvider { id npi familyName }
  records(first: 10) { pageInfo { hasNextPage }
    edges { ... on MedicalRecordEdge { node { ...RecordParts } } } } }
fragment RecordParts on MedicalRecord { id status visitDate
  provider { id familyName }
  diagnoses { icd10Code type }
  attachments { fileName status } }"""


@contextmanager
def count_tasks() -> Iterator[list[int]]:
    """How many asyncio tasks the block starts."""
    loop = asyncio.get_running_loop()
    started = [0]
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        started[0] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        yield started
    finally:
        loop.set_task_factory(previous)


@pytest.mark.parametrize("query", [LOADER_MOBILE_QUERY, FRAGMENT_QUERY], ids=["plain", "fragments"])
async def test_nested_relations_cost_no_task_per_record(
    query: str, api: Api, factory: Factory
) -> None:
    """A page loads what its records' fields select, so those fields complete in place."""
    await _clinic(factory, patients=4, records_each=1)
    with count_tasks() as few_records:
        await api.data(query, {"n": 4})
    await _clinic(factory, patients=4, records_each=4)
    with count_tasks() as more_records:
        data = await api.data(query, {"n": 4})
    assert {len(p["node"]["records"]["edges"]) for p in data["patients"]["edges"]} == {4}
    assert more_records[0] == few_records[0]


async def test_fragments_give_the_same_answer_with_the_same_statements(
    api: Api, factory: Factory, app: Starlette
) -> None:
    await _clinic(factory, patients=8, records_each=2)
    engine = app.state.services.engine
    async with count_statements(engine) as plain:
        expected = await api.data(LOADER_MOBILE_QUERY, {"n": 8})
    async with count_statements(engine) as fragments:
        data = await api.data(FRAGMENT_QUERY, {"n": 8})
    assert data == expected
    assert fragments.count == plain.count


async def test_relations_the_query_does_not_select_are_not_loaded(
    api: Api, factory: Factory, app: Starlette
) -> None:
    await _clinic(factory, patients=4, records_each=2)
    engine = app.state.services.engine
    async with count_statements(engine) as log:
        data = await api.data(
            "{ patients { edges { node {"
            " records { pageInfo { hasNextPage } edges { node { id status } } } } } } }"
        )
    assert {len(p["node"]["records"]["edges"]) for p in data["patients"]["edges"]} == {2}
    read = " ".join(log.statements).lower()
    assert "from diagnoses" not in read
    assert "from attachments" not in read
    # Only the caller's own link is looked up in providers, never a record's provider.
    assert "providers.npi" not in read


async def test_lists_read_the_record_json_columns_only_when_selected(
    api: Api, factory: Factory, app: Starlette
) -> None:
    await _clinic(factory, patients=2, records_each=2)
    engine = app.state.services.engine
    async with count_statements(engine) as without:
        await api.data(
            # The root list is one statement (it never reads the JSON columns either).
            "{ records(first: 5) { edges { node { id status } } }"
            " patients(first: 2) { edges { node {"
            " records { pageInfo { hasNextPage } edges { node { id } } } } } } }"
        )
    async with count_statements(engine) as with_json:
        data = await api.data(
            "{ records(first: 5) { edges { node { vitalSigns { heartRate } } } }"
            " patients(first: 2) { edges { node { records { edges { node {"
            " prescriptions { medication } labResults { test } } } } } } } }"
        )
    assert not [s for s in without.statements if "vital_signs" in s]
    # The root list and the patients' lists, each with all three columns.
    assert len([s for s in with_json.statements if "lab_results" in s]) == 2
    assert {e["node"]["vitalSigns"]["heartRate"] for e in data["records"]["edges"]} == {70}
    nested = [e["node"] for p in data["patients"]["edges"] for e in p["node"]["records"]["edges"]]
    assert len(nested) == 4
    assert all(n["prescriptions"] == [{"medication": "Metformin"}] for n in nested)
    assert all(n["labResults"] == [{"test": "HbA1c"}] for n in nested)
