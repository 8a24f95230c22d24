"""Queries read from a hot standby; a caller still reads its own writes, on any instance.

A real primary and a real streaming replica (tests/replica.py), and two `medrec serve` processes
on them: instance A and instance B, as behind a load balancer. That a read came from the replica
shows when the replica's replay is paused: it answers with what the primary had before.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.data import migrations
from app.domain.opaque_ids import NodeType, OpaqueIds
from app.ops.dev_issuer import LocalTokenIssuer
from app.settings import Settings
from models.enums import Confidentiality
from tests.api_client import Api, error_codes
from tests.factories import Factory
from tests.replica import ReplicatedServers, primary_with_replica
from tests.servers import server_environment, serving

IDS = OpaqueIds("medrec-opaque-id-v1")
HEADER = "X-Medrec-Consistency"

PATIENT = "query Patient($id: ID!) { patient(id: $id) { id familyName } }"
RECORDS = "query Records($id: ID!) { patient(id: $id) { records(first: 10) { totalCount } } }"
REVOKE = "mutation Revoke($id: ID!) { revokeBreakGlass(id: $id) { grant { id active } } }"
RENAME = """mutation Rename($input: UpdatePatientInput!) {
  updatePatient(input: $input) { patient { id familyName version } } }"""


@dataclass(frozen=True)
class Deployment:
    servers: ReplicatedServers
    primary_url: str
    instances: tuple[str, str]


@pytest.fixture(scope="module")
def deployment(settings: Settings) -> Iterator[Deployment]:
    with primary_with_replica() as servers:
        primary_url, replica_url = servers.database(f"medrec_replicas_{uuid.uuid4().hex[:8]}")
        migrations.upgrade(primary_url)
        servers.wait_for_replay()
        replicated = settings.model_copy(
            update={
                "database_url": primary_url,
                "database_listen_url": primary_url,
                "db_pool_mode": "session",
                "database_read_urls": (replica_url,),
                # Replay is paused for seconds at a time here; lag alone must not skip it.
                "replica_max_lag_seconds": 300.0,
            }
        )
        environment = server_environment(replicated)
        with serving(environment) as first, serving(environment) as second:
            yield Deployment(servers, primary_url, (first, second))


@pytest.fixture(scope="module")
async def primary_engine(deployment: Deployment) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(deployment.primary_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def replica_factory(primary_engine: AsyncEngine, tenant_id: str) -> Factory:
    return Factory(async_sessionmaker(primary_engine, expire_on_commit=False), tenant_id)


@pytest.fixture
async def instances(
    deployment: Deployment, issuer: LocalTokenIssuer, tenant_id: str
) -> AsyncIterator[tuple[Api, Api]]:
    first, second = deployment.instances
    async with httpx.AsyncClient(base_url=first) as a, httpx.AsyncClient(base_url=second) as b:
        yield Api(a, issuer, tenant_id), Api(b, issuer, tenant_id)


@contextmanager
def _replay_paused(servers: ReplicatedServers) -> Iterator[None]:
    """The replica keeps what it has replayed so far: a read of it shows older data."""
    servers.pause_replay()
    try:
        yield
    finally:
        servers.resume_replay()


async def _replayed(servers: ReplicatedServers) -> None:
    """Returns once the replica has replayed the primary's writes so far and the instances'
    replica monitors (one sample a second) have seen it."""
    servers.wait_for_replay()
    await asyncio.sleep(2.5)


async def _family_name(api: Api, patient_id: str, token: str, consistency: str | None) -> str:
    headers = {} if consistency is None else {HEADER: consistency}
    response = await api.post(PATIENT, {"id": patient_id}, token=token, headers=headers)
    body = response.json()
    assert "errors" not in body, body
    name: str = body["data"]["patient"]["familyName"]
    return name


async def _replicated_patient(
    factory: Factory, servers: ReplicatedServers
) -> tuple[dict[str, Any], str]:
    """A patient the replica has, once an instance's replica monitor has seen it replayed."""
    patient = await factory.patient()
    patient_id = IDS.encode_id(NodeType.PATIENT, patient["id"])
    await _replayed(servers)
    return patient, patient_id


async def test_a_read_after_a_write_on_another_instance_sees_it_with_the_token(
    deployment: Deployment, instances: tuple[Api, Api], replica_factory: Factory
) -> None:
    a, b = instances
    admin = a.token(subject="admin-replicas", groups=("admin",))
    patient, patient_id = await _replicated_patient(replica_factory, deployment.servers)
    with _replay_paused(deployment.servers):
        renamed = await a.query(
            RENAME,
            {"input": {"id": patient_id, "expectedVersion": 1, "familyName": "Renamed"}},
            token=admin,
        )
        assert "errors" not in renamed, renamed
        token = renamed["extensions"]["consistency"]
        assert IDS.decode_consistency(token) > 0
        # Without the token, instance B reads the replica, which has not replayed the write...
        assert await _family_name(b, patient_id, admin, None) == patient["family_name"]
        # ...with it, B reads where the write is: here the primary.
        assert await _family_name(b, patient_id, admin, token) == "Renamed"
        assert await _family_name(a, patient_id, admin, token) == "Renamed"
    await _replayed(deployment.servers)
    assert await _family_name(b, patient_id, admin, None) == "Renamed"
    assert await _family_name(b, patient_id, admin, token) == "Renamed"


async def test_malformed_tokens_are_refused(
    deployment: Deployment, instances: tuple[Api, Api], replica_factory: Factory
) -> None:
    a, _ = instances
    admin = a.token(subject="admin-replicas", groups=("admin",))
    patient_id = IDS.encode_id(NodeType.PATIENT, (await replica_factory.patient())["id"])
    other_key = OpaqueIds("another-deployment").encode_consistency(1)
    an_id = IDS.encode_id(NodeType.PATIENT, uuid.uuid4())
    for token in ("", "garbage", other_key, an_id, "A" * 400):
        response = await a.post(PATIENT, {"id": patient_id}, token=admin, headers={HEADER: token})
        assert response.status_code == 400, token
        assert error_codes(response.json()) == ["BAD_USER_INPUT"], token

    ws_url = deployment.instances[0].replace("http://", "ws://", 1) + "/graphql"
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as socket_:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {admin}", "consistency": "garbage"}
        await socket_.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket_.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_reads_go_on_while_the_replica_is_down(
    deployment: Deployment, instances: tuple[Api, Api], replica_factory: Factory
) -> None:
    a, b = instances
    admin = a.token(subject="admin-replicas", groups=("admin",))
    patient, patient_id = await _replicated_patient(replica_factory, deployment.servers)
    deployment.servers.stop_replica()
    try:
        # At once, before the monitor has noticed, and after.
        for _ in range(3):
            names = await asyncio.gather(
                *(_family_name(api, patient_id, admin, None) for api in (a, b) for _ in range(4))
            )
            assert names == [patient["family_name"]] * 8
            await asyncio.sleep(1.0)
    finally:
        deployment.servers.start_replica()
    # Back in service once sampled again: with replay paused, a read shows the replica's data.
    await _replayed(deployment.servers)
    with _replay_paused(deployment.servers):
        async with replica_factory.sessionmaker() as session, session.begin():
            await session.execute(
                text("UPDATE patients SET family_name = 'Later' WHERE id = :id"),
                {"id": patient["id"]},
            )
        assert await _family_name(b, patient_id, admin, None) == patient["family_name"]


async def test_a_revoked_grant_stops_granting_at_once_whatever_the_replica_has_replayed(
    deployment: Deployment, instances: tuple[Api, Api], replica_factory: Factory
) -> None:
    a, b = instances
    factory = replica_factory
    admin = a.token(subject="admin-replicas", groups=("admin",))
    subject = f"dr-holder-{factory.tenant_id}"
    holder = await factory.provider(cognito_sub=subject)
    patient = await factory.patient()
    await factory.record(
        patient, await factory.provider(), confidentiality=Confidentiality.RESTRICTED
    )
    grant = await factory.grant(patient, subject, provider_id=holder["id"])
    patient_id = IDS.encode_id(NodeType.PATIENT, patient["id"])
    dr = a.token(subject=subject, groups=("provider",))
    await _replayed(deployment.servers)

    async def restricted_seen(api: Api) -> int:
        count: int = (await api.data(RECORDS, {"id": patient_id}, token=dr))["patient"]["records"][
            "totalCount"
        ]
        return count

    assert [await restricted_seen(api) for api in (a, b)] == [1, 1]
    with _replay_paused(deployment.servers):
        revoked = await a.data(
            REVOKE, {"id": IDS.encode_id(NodeType.BREAK_GLASS_GRANT, grant["id"])}, token=admin
        )
        assert revoked["revokeBreakGlass"]["grant"]["active"] is False
        # The replica still has the grant active; the holder's reads go to the primary.
        assert [await restricted_seen(api) for api in (a, b)] == [0, 0]
