"""Who a token's subject is: linked to at most one provider or patient row in the installation,
and a provider whose ``active`` is false acts in no role."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from app.auth.callers import resolve_viewer
from app.data.repositories.subject_links import acts_through_linked_row
from app.domain.viewer import Viewer
from models import Patient, Provider, SubjectLink, table_of
from tests.api_client import Api, error_codes
from tests.factories import Factory

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
    from starlette.applications import Starlette

ME = "{ me { subject tenantId roles provider { npi } patient { mrn } } }"
PATIENTS = "{ patients { totalCount } }"
RECORDS = "{ records { totalCount } }"
PROVIDERS = "{ providers { totalCount } }"
CREATE_PROVIDER = """mutation($input: CreateProviderInput!) {
  createProvider(input: $input) { provider { id } } }"""
CREATE_PATIENT = """mutation($input: CreatePatientInput!) {
  createPatient(input: $input) { patient { id } } }"""


def _new_provider(subject: str, npi: str = "1234567893") -> dict[str, Any]:
    return {"npi": npi, "givenName": "Grace", "familyName": "Hopper", "cognitoSub": subject}


def _new_patient(subject: str | None, mrn: str = "MRN-LINK-1") -> dict[str, Any]:
    return {
        "mrn": mrn,
        "givenName": "Ada",
        "familyName": "Lovelace",
        "dateOfBirth": "1990-05-17",
        "sex": "FEMALE",
        "cognitoSub": subject,
    }


CREATE = {
    "createProvider": (CREATE_PROVIDER, _new_provider),
    "createPatient": (CREATE_PATIENT, _new_patient),
}


async def _stored(sessionmaker: async_sessionmaker[AsyncSession], tenant: str) -> Any:
    """Every provider and patient row of ``tenant`` and its ``-...`` tenants, and every link."""
    async with sessionmaker() as session:
        rows: list[Any] = []
        for table in (Provider, Patient):
            rows += (
                await session.execute(
                    select(table_of(table)).where(
                        (table.tenant_id == tenant) | table.tenant_id.like(f"{tenant}-%")
                    )
                )
            ).all()
        links = (await session.scalars(select(SubjectLink.subject))).all()
    return sorted(map(tuple, rows), key=str), sorted(links)


async def _link(factory: Factory, kind: str, subject: str) -> dict[str, Any]:
    if kind == "provider":
        return await factory.provider(cognito_sub=subject)
    return await factory.patient(cognito_sub=subject)


def _assert_says_nothing_of_where(body: dict[str, Any], tenant: str) -> None:
    assert error_codes(body) == ["CONFLICT"]
    message = body["errors"][0]["message"]
    assert message.startswith("input.cognitoSub:")
    for secret in (tenant, "provider", "patient", "tenant"):
        assert secret not in message
    assert body["data"] is None


# --- a subject is linked once, across tenants and kinds ------------------------------------------


@pytest.mark.parametrize("linked_as", ["provider", "patient"])
@pytest.mark.parametrize("mutation", ["createProvider", "createPatient"])
async def test_an_admin_of_another_tenant_cannot_link_a_subject_linked_in_this_one(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    linked_as: str,
    mutation: str,
) -> None:
    subject = f"victim-{factory.tenant_id}"
    await _link(factory, linked_as, subject)
    other_tenant = f"{factory.tenant_id}-b"
    before = await _stored(sessionmaker, factory.tenant_id)

    document, make_input = CREATE[mutation]
    other_admin = api.token(tenant_id=other_tenant)
    body = await api.query(document, {"input": make_input(subject)}, token=other_admin)

    _assert_says_nothing_of_where(body, factory.tenant_id)
    assert await _stored(sessionmaker, factory.tenant_id) == before
    # The victim's access token (no tenant claim) still finds its tenant and its role.
    own = api.issuer.issue(subject, groups=(linked_as,), token_use="access")
    me = (await api.data(ME, token=own))["me"]
    assert me["tenantId"] == factory.tenant_id
    assert me[linked_as] is not None
    assert "errors" not in await api.query(PROVIDERS, token=own)


@pytest.mark.parametrize(
    ("linked_as", "mutation"),
    [
        ("provider", "createPatient"),
        ("patient", "createPatient"),
        ("provider", "createProvider"),
        ("patient", "createProvider"),
    ],
)
async def test_a_subject_linked_in_the_same_tenant_cannot_be_linked_again(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    linked_as: str,
    mutation: str,
) -> None:
    subject = f"twice-{factory.tenant_id}"
    await _link(factory, linked_as, subject)
    before = await _stored(sessionmaker, factory.tenant_id)

    document, make_input = CREATE[mutation]
    body = await api.query(document, {"input": make_input(subject)})

    _assert_says_nothing_of_where(body, factory.tenant_id)
    assert await _stored(sessionmaker, factory.tenant_id) == before


async def test_the_database_refuses_a_second_link_from_any_writer(
    factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Not only the mutations: an UPDATE that links a row to a subject linked elsewhere fails."""
    subject = f"any-writer-{factory.tenant_id}"
    await factory.provider(cognito_sub=subject)
    other = Factory(sessionmaker, f"{factory.tenant_id}-b")
    patient = await other.patient()
    with pytest.raises(IntegrityError, match="pk_subject_links"):
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Patient).where(Patient.id == patient["id"]).values(cognito_sub=subject)
            )


async def test_unlinking_or_deleting_a_row_frees_its_subject(
    factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    subject = f"freed-{factory.tenant_id}"
    first = await factory.patient(cognito_sub=subject)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Patient).where(Patient.id == first["id"]).values(cognito_sub=f"{subject}-new")
        )
    second = await factory.patient(cognito_sub=subject)
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Patient).where(Patient.id == second["id"]))
    await factory.provider(cognito_sub=subject)

    async with sessionmaker() as session:
        links = set((await session.scalars(select(SubjectLink.subject))).all())
    assert {subject, f"{subject}-new"} <= links


async def test_two_links_of_one_subject_racing_in_the_database_let_exactly_one_win(
    factory: Factory, engine: AsyncEngine
) -> None:
    """The second insert waits for the first transaction, then fails when it commits."""
    subject = f"race-{factory.tenant_id}"
    provider = factory.provider_values()
    patient = Factory(factory.sessionmaker, f"{factory.tenant_id}-b").patient_values()
    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        await second.begin()
        await first.execute(insert(Provider), [provider | {"cognito_sub": subject}])
        losing = asyncio.create_task(
            second.execute(insert(Patient), [patient | {"cognito_sub": subject}])
        )
        await asyncio.sleep(0.2)
        assert not losing.done()  # blocked on the first transaction's link
        await first.commit()
        with pytest.raises(IntegrityError, match="pk_subject_links"):
            await losing
        await second.rollback()
    async with factory.sessionmaker() as session:
        linked = (
            await session.execute(
                text(
                    "SELECT id FROM providers WHERE cognito_sub = :s "
                    "UNION ALL SELECT id FROM patients WHERE cognito_sub = :s"
                ),
                {"s": subject},
            )
        ).scalars()
        assert list(linked) == [provider["id"]]


async def test_concurrent_mutations_linking_one_subject_in_two_tenants_let_exactly_one_win(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    subject = f"race-api-{factory.tenant_id}"
    tenants = [factory.tenant_id, f"{factory.tenant_id}-b", f"{factory.tenant_id}-c"]
    bodies = await asyncio.gather(
        *(
            api.query(
                CREATE_PATIENT, {"input": _new_patient(subject)}, token=api.token(tenant_id=t)
            )
            for t in tenants
        )
    )
    outcomes = sorted(error_codes(body)[0] if "errors" in body else "OK" for body in bodies)
    assert outcomes == ["CONFLICT", "CONFLICT", "OK"]
    async with sessionmaker() as session:
        linked = (
            await session.scalars(select(Patient.tenant_id).where(Patient.cognito_sub == subject))
        ).all()
    assert len(linked) == 1


# --- an inactive provider acts in no role ------------------------------------------------------


async def _set_active(
    sessionmaker: async_sessionmaker[AsyncSession], provider: dict[str, Any], active: bool
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Provider).where(Provider.id == provider["id"]).values(active=active)
        )


@pytest.mark.parametrize("tenant_claim", [True, False], ids=["id-token", "access-token"])
async def test_an_inactive_provider_may_call_me_only_until_reactivated(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_claim: bool,
) -> None:
    subject = f"dr-leaving-{factory.tenant_id}"
    provider = await factory.provider(cognito_sub=subject)
    await factory.patient()
    token = (
        api.token(subject=subject, groups=("provider",))
        if tenant_claim
        else api.issuer.issue(subject, groups=("provider",), token_use="access")
    )
    assert (await api.data(PATIENTS, token=token))["patients"]["totalCount"] == 1

    # Takes effect on the very next request: nothing about the viewer is kept between them.
    await _set_active(sessionmaker, provider, False)
    before = await _stored(sessionmaker, factory.tenant_id)
    for query in (PATIENTS, RECORDS, PROVIDERS):
        body = await api.query(query, token=token)
        assert error_codes(body) == ["FORBIDDEN"]
        assert body["data"] is None
    body = await api.query(CREATE_PATIENT, {"input": _new_patient(None)}, token=token)
    assert error_codes(body) == ["FORBIDDEN"]
    assert await _stored(sessionmaker, factory.tenant_id) == before
    # `me` answers as for a provider token linked to no row: its groups, no provider, and a
    # tenant only if the token names one.
    me = (await api.data(ME, token=token))["me"]
    assert me == {
        "subject": subject,
        "tenantId": factory.tenant_id if tenant_claim else None,
        "roles": ["PROVIDER"],
        "provider": None,
        "patient": None,
    }

    await _set_active(sessionmaker, provider, True)
    assert (await api.data(PATIENTS, token=token))["patients"]["totalCount"] == 1
    assert (await api.data(ME, token=token))["me"]["provider"] == {"npi": provider["npi"]}


async def test_an_admin_token_naming_its_tenant_acts_as_admin_though_linked_to_an_inactive_provider(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    subject = f"admin-leaving-{factory.tenant_id}"
    provider = await factory.provider(cognito_sub=subject, active=False)
    admin = api.token(subject=subject, groups=("admin", "provider"))
    assert (await api.data(PROVIDERS, token=admin))["providers"]["totalCount"] == 1
    me = (await api.data(ME, token=admin))["me"]
    assert me["roles"] == ["ADMIN", "PROVIDER"]
    assert me["provider"] is None
    await _set_active(sessionmaker, provider, True)
    assert (await api.data(ME, token=admin))["me"]["provider"] == {"npi": provider["npi"]}


async def test_an_admin_token_without_a_tenant_claim_gets_no_tenant_from_an_inactive_provider(
    api: Api, factory: Factory
) -> None:
    subject = f"admin-by-link-{factory.tenant_id}"
    await factory.provider(cognito_sub=subject, active=False)
    admin = api.issuer.issue(subject, groups=("admin",), token_use="access")
    assert (await api.data(ME, token=admin))["me"]["tenantId"] is None
    assert error_codes(await api.query(PROVIDERS, token=admin)) == ["FORBIDDEN"]


async def test_a_resolved_provider_no_longer_acts_in_its_role_once_deactivated(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession], app: Starlette
) -> None:
    """What a long-lived connection asks before it acts for a viewer resolved earlier."""
    services = app.state.services
    reads = services.read_engine.connect
    subject = f"dr-watching-{factory.tenant_id}"
    provider = await factory.provider(cognito_sub=subject)
    token = await services.verifier.verify(api.token(subject=subject, groups=("provider",)))
    viewer = await resolve_viewer(reads, token)
    assert viewer.provider_id == provider["id"]

    async def acts(viewer: Viewer) -> bool:
        async with sessionmaker() as session:
            return await acts_through_linked_row(session, viewer, subject)

    assert await acts(viewer)
    await _set_active(sessionmaker, provider, False)
    assert not await acts(viewer)
    await _set_active(sessionmaker, provider, True)
    assert await acts(viewer)

    admin = await services.verifier.verify(api.token(subject=subject, groups=("admin",)))
    await _set_active(sessionmaker, provider, False)
    assert await acts(await resolve_viewer(reads, admin))
