"""Admins read their tenant's audit trail through Query.auditEvents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.opaque_ids import NodeType, OpaqueIds
from tests.api_client import Api, error_codes
from tests.factories import Factory

AUDIT = """query($filter: AuditEventFilter, $first: Int, $after: String) {
  auditEvents(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { operationName operationType outcome subject roles patientIds recordIds
      requestId clientAddress querySha256 } } } }"""

IDS = OpaqueIds("medrec-opaque-id-v1")


async def test_admin_reads_and_filters_the_trail(api: Api, factory: Factory) -> None:
    provider = await factory.provider(cognito_sub="reader")
    alice = await factory.patient()
    bob = await factory.patient()
    await factory.record(alice, provider)
    alice_id = IDS.encode_id(NodeType.PATIENT, alice["id"])
    reader = api.token(subject="reader", groups=("provider",))
    await api.data(
        "query ReadAlice($id: ID!) { patient(id: $id) { mrn records { edges { node { id } } } } }",
        {"id": alice_id},
        token=reader,
    )
    await api.data(
        "query ReadBob($id: ID!) { patient(id: $id) { mrn } }",
        {"id": IDS.encode_id(NodeType.PATIENT, bob["id"])},
        token=reader,
    )

    about_alice = (await api.data(AUDIT, {"filter": {"patientId": alice_id}}))["auditEvents"]
    assert about_alice["totalCount"] == 1
    event = about_alice["edges"][0]["node"]
    assert event["operationName"] == "ReadAlice"
    assert event["operationType"] == "query"
    assert event["outcome"] == "OK"
    assert event["subject"] == "reader"
    assert event["roles"] == ["provider"]
    assert event["patientIds"] == [alice_id]
    assert len(event["recordIds"]) == 1
    assert event["clientAddress"] == "203.0.113.7"
    assert len(event["querySha256"]) == 64

    everything = (await api.data(AUDIT, {"first": 1}))["auditEvents"]
    # Both reads, and the admin's own first audit query (this one is being written as we read).
    assert everything["totalCount"] >= 3
    assert everything["pageInfo"]["hasNextPage"] is True
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = await api.data(AUDIT, {"filter": {"occurredAfter": future}})
    assert later["auditEvents"]["totalCount"] == 0


async def test_only_admins_read_the_trail(api: Api) -> None:
    for groups in (("provider",), ("patient",)):
        body = await api.query(AUDIT, token=api.token(groups=groups))
        assert error_codes(body) == ["FORBIDDEN"]


async def test_other_tenants_trail_is_invisible(api: Api, factory: Factory) -> None:
    await api.data("query Mine { patients { totalCount } }")
    other_admin = api.token(tenant_id=f"{factory.tenant_id}-other")
    trail = await api.data(AUDIT, token=other_admin)
    assert all(e["node"]["operationName"] != "Mine" for e in trail["auditEvents"]["edges"])
