"""More requests at once than the pool has connections: each waits its turn, none waits forever.

A request gives its read connection back before it waits for another (a write's transaction, the
audit writer's flush); holding one while waiting for a second, requests would wait for each other
until the pool's timeout and fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.domain.opaque_ids import NodeType, OpaqueIds
from app.server.main import create_app
from app.settings import Settings
from tests.api_client import Api
from tests.factories import Factory
from tests.observability.test_metrics import scrape, value

IDS = OpaqueIds("medrec-opaque-id-v1")
POOL = 2
REQUESTS = 10

PATIENT = "query Patient($id: ID!) { patient(id: $id) { id familyName } }"
UPDATE_PATIENT = """mutation Rename($input: UpdatePatientInput!) {
  updatePatient(input: $input) { patient { id familyName } } }"""


@pytest.fixture
async def small_pool_api(settings: Settings, api: Api) -> AsyncIterator[Api]:
    # The timeout only bounds a failure: with requests waiting for each other, it would expire.
    small = settings.model_copy(update={"db_pool_size": POOL, "db_pool_timeout_seconds": 5.0})
    application: Starlette = create_app(small)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
            yield Api(client, api.issuer, api.tenant_id)


async def test_reads_and_writes_beyond_the_pool_size_all_answer(
    small_pool_api: Api, factory: Factory
) -> None:
    api = small_pool_api
    admin = api.token(subject="admin-pool", groups=("admin",))
    patients = [await factory.patient() for _ in range(REQUESTS)]
    ids = [IDS.encode_id(NodeType.PATIENT, patient["id"]) for patient in patients]

    async def read(patient_id: str) -> Any:
        return await api.query(PATIENT, {"id": patient_id}, token=admin)

    async def rename(patient_id: str, number: int) -> Any:
        variables = {
            "input": {"id": patient_id, "expectedVersion": 1, "familyName": f"Renamed{number}"}
        }
        return await api.query(UPDATE_PATIENT, variables, token=admin)

    answers = await asyncio.gather(
        *(read(patient_id) for patient_id in ids),
        *(rename(patient_id, number) for number, patient_id in enumerate(ids)),
    )
    assert [answer.get("errors") for answer in answers] == [None] * (2 * REQUESTS)
    # The waits are counted for the operator (/metrics), and none gave up.
    _, samples = await scrape(api.client)
    assert value(samples, "medrec_db_pool_waits_total", pool="primary") > 0
    assert value(samples, "medrec_db_pool_wait_seconds_total", pool="primary") > 0
    assert value(samples, "medrec_db_pool_timeouts_total", pool="primary") == 0
    renamed = [answer["data"]["updatePatient"]["patient"] for answer in answers[REQUESTS:]]
    assert [patient["familyName"] for patient in renamed] == [
        f"Renamed{n}" for n in range(REQUESTS)
    ]
