"""Nested reads cost one SQL statement per relation level, never one per row."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
        with count_statements(engine) as log:
            data = await api.data(MOBILE_QUERY, {"n": n})
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
        with count_statements(engine) as log:
            await api.data(MOBILE_QUERY, {"n": n})
        texts.append(set(log.statements))
    # `= ANY(:ids)` keeps statement text (and so prepared statements) identical across batch sizes.
    assert texts[0] == texts[1]
    assert any("= ANY" in s.upper() for s in texts[0])


async def test_totals_cost_statements_only_when_selected(
    api: Api, factory: Factory, app: Starlette
) -> None:
    await _clinic(factory, patients=4, records_each=2)
    engine = app.state.services.engine
    with count_statements(engine) as without:
        await api.data("{ patients { edges { node { records { edges { node { id } } } } } } }")
    with count_statements(engine) as with_totals:
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
        data = await api.data(MOBILE_QUERY, {"n": 6})
    finally:
        event.remove(pool, "checkout", checked_out)
    assert len(data["patients"]["edges"]) == 6
    # The caller, every DataLoader batch and the audit row: one checkout, not one per statement.
    assert len(checkouts) == 1
