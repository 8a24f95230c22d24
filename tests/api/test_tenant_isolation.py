"""Tenants never see each other, in lists, in nested relations and in counts."""

from __future__ import annotations

from tests.api_client import Api
from tests.factories import Factory

EVERYTHING = """{
  patients(first: 100) { totalCount edges { node { mrn records(first: 100) { totalCount } } } }
  providers(first: 100) { totalCount edges { node { npi
    patients(first: 100) { totalCount edges { node { mrn } } }
    records(first: 100) { totalCount edges { node { id } } } } } }
  records(first: 100) { totalCount edges { node { id diagnoses { id } attachments { id }
    statusHistory { sequence } } } }
}"""


async def _populate(factory: Factory, patients: int) -> list[str]:
    provider = await factory.provider()
    mrns = []
    for _ in range(patients):
        patient = await factory.patient(primary_provider_id=provider["id"])
        record = await factory.record(patient, provider)
        await factory.diagnosis(record)
        await factory.attachment(record)
        await factory.status_event(record)
        mrns.append(patient["mrn"])
    return mrns


async def test_each_tenant_sees_only_its_own_rows(api: Api, factory: Factory) -> None:
    mine = await _populate(factory, 2)
    theirs_factory = Factory(factory.sessionmaker, f"{factory.tenant_id}-x")
    theirs = await _populate(theirs_factory, 3)

    for tenant, expected in ((factory.tenant_id, mine), (theirs_factory.tenant_id, theirs)):
        data = await api.data(EVERYTHING, token=api.token(tenant_id=tenant))
        assert sorted(e["node"]["mrn"] for e in data["patients"]["edges"]) == sorted(expected)
        assert data["patients"]["totalCount"] == len(expected)
        assert data["providers"]["totalCount"] == 1
        provider = data["providers"]["edges"][0]["node"]
        assert provider["patients"]["totalCount"] == len(expected)
        assert provider["records"]["totalCount"] == len(expected)
        assert data["records"]["totalCount"] == len(expected)
        for edge in data["records"]["edges"]:
            node = edge["node"]
            assert (
                len(node["diagnoses"]),
                len(node["attachments"]),
                len(node["statusHistory"]),
            ) == (1, 1, 1)


async def test_search_does_not_cross_tenants(api: Api, factory: Factory) -> None:
    other = Factory(factory.sessionmaker, f"{factory.tenant_id}-y")
    await other.patient(family_name="Zebediah")
    data = await api.data('{ patients(filter: {search: "zeb"}) { totalCount } }')
    assert data["patients"]["totalCount"] == 0
