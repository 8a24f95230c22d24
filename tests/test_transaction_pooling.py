"""``MEDREC_DB_POOL_MODE=transaction``: the API behind a real PgBouncer that pools by transaction.

The pooler here has three server sessions for many more client connections and hands them out
in turn, so a client's consecutive transactions run on different sessions. (``.ci/run`` also runs
the API, attachment and subscription suites through such a PgBouncer: MEDREC_TEST_PGBOUNCER=1.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.opaque_ids import NodeType, OpaqueIds
from app.server.main import create_app
from app.settings import Settings
from models import AuditEvent, MedicalRecord
from tests.api_client import Api
from tests.factories import Factory
from tests.pgbouncer import pgbouncer

IDS = OpaqueIds("medrec-opaque-id-v1")

PATIENT = """query Patient($id: ID!) {
  patient(id: $id) { id familyName records(first: 10) { totalCount edges { node { id status } } } }
}"""
CREATE_RECORD = """mutation CreateRecord($input: CreateRecordInput!) {
  createRecord(input: $input) { record { id status version } } }"""
CHANGE_STATUS = """mutation ChangeStatus($input: ChangeRecordStatusInput!) {
  changeRecordStatus(input: $input) { record { id status version } } }"""


@pytest.fixture(scope="module")
def bounced_url(database_url: str) -> Iterator[str]:
    with pgbouncer(database_url, server_connections=3) as url:
        yield url


def _pooled(settings: Settings, bounced_url: str) -> Settings:
    return settings.model_copy(
        update={
            "database_url": bounced_url,
            "db_pool_mode": "transaction",
            "database_listen_url": settings.listen_url,
        }
    )


@pytest.fixture
async def pooled_api(settings: Settings, bounced_url: str, api: Api) -> AsyncIterator[Api]:
    application = create_app(_pooled(settings, bounced_url))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
            yield Api(client, api.issuer, api.tenant_id)


async def test_the_pooler_runs_consecutive_transactions_on_other_sessions(bounced_url: str) -> None:
    """What the pool mode guards against really happens here: a statement asyncpg prepared by name
    in one transaction is missing from the session that runs the next (or another client's of
    the same name is there)."""
    dsn = make_url(bounced_url).set(drivername="postgresql").render_as_string(hide_password=False)
    failures: list[str] = []

    async def client() -> None:
        connection = await asyncpg.connect(dsn)  # statement cache on, as in session mode
        try:
            for step in range(20):
                try:
                    assert await connection.fetchval("SELECT $1::int + 1", step) == step + 1
                except asyncpg.PostgresError as error:
                    failures.append(error.sqlstate)
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(6)))
    # invalid_sql_statement_name, duplicate_prepared_statement
    assert failures
    assert set(failures) <= {"26000", "42P05"}


async def test_reads_and_writes_through_the_pooler(
    pooled_api: Api, factory: Factory, engine: AsyncEngine
) -> None:
    """Many requests at once, on many more client connections than the pooler has sessions:
    every read answers in full and every write is committed with its audit row."""
    api = pooled_api
    provider = await factory.provider(cognito_sub="dr-pooled")
    patients = [await factory.patient(primary_provider_id=provider["id"]) for _ in range(4)]
    dr = api.token(subject="dr-pooled", groups=("provider",))
    admin = api.token(subject="admin-pooled", groups=("admin",))
    patient_ids = [IDS.encode_id(NodeType.PATIENT, patient["id"]) for patient in patients]

    async def write(patient_id: str) -> dict[str, Any]:
        created = await api.data(
            CREATE_RECORD,
            {
                "input": {
                    "patientId": patient_id,
                    "recordType": "CONSULTATION",
                    "visitDate": "2026-11-20T09:30:00+00:00",
                }
            },
            token=dr,
        )
        record = created["createRecord"]["record"]
        changed = await api.data(
            CHANGE_STATUS,
            {
                "input": {
                    "id": record["id"],
                    "status": "ENTERED_IN_ERROR",
                    "expectedVersion": record["version"],
                    "reason": "entered for the wrong visit",
                }
            },
            token=admin,
        )
        return dict(changed["changeRecordStatus"]["record"])

    async def read(patient_id: str) -> dict[str, Any]:
        return dict((await api.data(PATIENT, {"id": patient_id}, token=dr))["patient"])

    audited_before = await _audit_rows(engine, factory.tenant_id)
    written = await asyncio.gather(*(write(patient_ids[n % 4]) for n in range(12)))
    assert [record["status"] for record in written] == ["ENTERED_IN_ERROR"] * 12
    assert {record["version"] for record in written} == {2}

    read_back = await asyncio.gather(*(read(patient_ids[n % 4]) for n in range(24)))
    for number, patient in enumerate(read_back):
        assert patient["id"] == patient_ids[number % 4]
        assert patient["familyName"] == patients[number % 4]["family_name"]
        assert patient["records"]["totalCount"] == 3
        statuses = {edge["node"]["status"] for edge in patient["records"]["edges"]}
        assert statuses == {"ENTERED_IN_ERROR"}

    async with engine.connect() as connection:
        stored = await connection.scalar(
            select(func.count())
            .select_from(MedicalRecord)
            .where(MedicalRecord.tenant_id == factory.tenant_id)
        )
    assert stored == 12
    # One audit row per operation: 24 writes and 24 reads.
    assert await _audit_rows(engine, factory.tenant_id) - audited_before == 48


async def _audit_rows(engine: AsyncEngine, tenant_id: str) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
        )
    return int(count or 0)


async def test_start_up_warns_when_listen_would_go_through_the_pooler(
    settings: Settings, bounced_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="medrec")
    for listen_url, warned in ((None, True), (settings.listen_url, False)):
        caplog.clear()
        pooled = _pooled(settings, bounced_url).model_copy(
            update={"database_listen_url": listen_url}
        )
        application = create_app(pooled)
        async with application.router.lifespan_context(application):
            pass
        messages = [record.getMessage() for record in caplog.records]
        assert any("without MEDREC_DATABASE_LISTEN_URL" in m for m in messages) is warned
