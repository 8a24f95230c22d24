"""Signing in through the HTTP endpoint: who may call what, and how refusals read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from tests.api_client import StatementLog

from tests.api_client import Api, count_statements, error_codes
from tests.factories import Factory

ME = "{ me { subject tenantId roles provider { npi } patient { mrn } } }"
PATIENTS = "{ patients { totalCount } }"


async def test_no_token_is_unauthenticated_and_says_why(api: Api) -> None:
    response = await api.post(ME)
    body = response.json()
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "missing Authorization header" in body["errors"][0]["message"]
    assert body["data"] is None


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": 1_000_000_000}, "expired"),
        ({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"}, "issuer"),
        ({"aud": "some-other-client"}, "audience"),
    ],
)
async def test_refused_token_is_unauthenticated_and_never_echoed(
    api: Api, claims: dict[str, object], reason: str
) -> None:
    token = api.token(claims=claims)
    body = (await api.post(PATIENTS, token=token)).json()
    assert error_codes(body) == ["UNAUTHENTICATED"]
    message = body["errors"][0]["message"]
    assert reason in message
    assert token not in message
    assert token.split(".")[1] not in str(body)


async def test_introspection_needs_no_token(api: Api) -> None:
    body = (await api.post("{ __schema { queryType { name } } __typename }")).json()
    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}, "__typename": "Query"}


async def test_admin_token_with_tenant_claim(api: Api) -> None:
    data = await api.data(ME, token=api.token(subject="the-admin", groups=("admin", "auditors")))
    assert data["me"] == {
        "subject": "the-admin",
        "tenantId": api.tenant_id,
        "roles": ["ADMIN"],
        "provider": None,
        "patient": None,
    }


def _link_lookups(log: StatementLog) -> int:
    return sum("cognito_sub = " in statement for statement in log.statements)


async def test_an_admin_token_with_a_tenant_claim_looks_up_its_links_only_for_me(
    api: Api, factory: Factory, app: Starlette
) -> None:
    """Linked rows do not change what an admin may read: no statement for them per request,
    but ``me`` still names them."""
    provider = await factory.provider(cognito_sub="admin-and-doctor")
    engine = app.state.services.engine
    admin = api.token(subject="admin-and-doctor", groups=("admin", "provider"))
    async with count_statements(engine) as log:
        assert (await api.data(PATIENTS, token=admin))["patients"]["totalCount"] == 0
    assert _link_lookups(log) == 0
    async with count_statements(engine) as log:
        data = await api.data(ME, token=admin)
    assert data["me"]["roles"] == ["ADMIN", "PROVIDER"]
    assert data["me"]["provider"] == {"npi": provider["npi"]}
    assert _link_lookups(log) == 1
    # A provider's token still reads its linked row, which decides whether it acts as one.
    doctor = api.token(subject="admin-and-doctor", groups=("provider",))
    async with count_statements(engine) as log:
        assert (await api.data(PATIENTS, token=doctor))["patients"]["totalCount"] == 0
    assert _link_lookups(log) == 1


async def test_tenant_comes_from_the_linked_provider_without_a_claim(
    api: Api, factory: Factory
) -> None:
    provider = await factory.provider(cognito_sub="sub-of-a-provider")
    token = api.issuer.issue("sub-of-a-provider", groups=("provider",), token_use="access")
    data = await api.data(ME, token=token)
    assert data["me"]["tenantId"] == api.tenant_id
    assert data["me"]["roles"] == ["PROVIDER"]
    assert data["me"]["provider"] == {"npi": provider["npi"]}
    assert (await api.data(PATIENTS, token=token))["patients"]["totalCount"] == 0


async def test_tenant_comes_from_the_linked_patient_without_a_claim(
    api: Api, factory: Factory
) -> None:
    patient = await factory.patient(cognito_sub="sub-of-a-patient")
    token = api.issuer.issue("sub-of-a-patient", groups=("patient",))
    data = await api.data(ME, token=token)
    assert data["me"]["tenantId"] == api.tenant_id
    assert data["me"]["patient"] == {"mrn": patient["mrn"]}


async def test_no_tenant_means_me_only(api: Api) -> None:
    token = api.token(subject="nobody-linked", tenant_id=None)
    data = await api.data(ME, token=token)
    assert data["me"]["tenantId"] is None
    assert data["me"]["roles"] == ["ADMIN"]
    body = await api.query(PATIENTS, token=token)
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] is None


async def test_no_role_means_me_only(api: Api) -> None:
    token = api.token(groups=("billing",))
    assert (await api.data(ME, token=token))["me"]["roles"] == []
    for query in (PATIENTS, "{ records { totalCount } }", "{ providers { totalCount } }"):
        assert error_codes(await api.query(query, token=token)) == ["FORBIDDEN"]


async def test_claim_tenant_wins_over_links_in_other_tenants(api: Api, factory: Factory) -> None:
    other = Factory(factory.sessionmaker, f"{factory.tenant_id}-b")
    await other.provider(cognito_sub="linked-elsewhere")
    token = api.issuer.issue("linked-elsewhere", groups=("provider",), tenant_id=api.tenant_id)
    data = await api.data(ME, token=token)
    assert data["me"]["tenantId"] == api.tenant_id
    assert data["me"]["provider"] is None


async def test_token_expiring_within_leeway_is_accepted(api: Api) -> None:
    past = datetime.now(UTC) - timedelta(hours=1, seconds=-5)
    token = api.issuer.issue(
        "admin", groups=("admin",), tenant_id=api.tenant_id, now=past, lifetime=timedelta(hours=1)
    )
    assert (await api.data(ME, token=token))["me"]["subject"] == "admin"


async def test_request_id_is_returned_and_reused_when_sane(api: Api) -> None:
    response = await api.post(ME, token=api.token(), headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    response = await api.post(ME, token=api.token(), headers={"X-Request-ID": "bad id\n"})
    assert response.headers["x-request-id"] != "bad id\n"
    assert len(response.headers["x-request-id"]) == 32
