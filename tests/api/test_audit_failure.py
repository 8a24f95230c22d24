"""If the audit row cannot be written, the request fails and changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Patient
from tests.api_client import Api, error_codes
from tests.factories import Factory


async def test_read_fails_without_its_audit_row(
    api: Api, factory: Factory, failing_request_id: str
) -> None:
    await factory.patient(family_name="Unaudited")
    response = await api.post(
        "{ patients { edges { node { familyName } } } }",
        token=api.token(),
        headers={"X-Request-ID": failing_request_id},
    )
    body = response.json()
    assert body["data"] is None
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "Unaudited" not in response.text


async def test_mutation_rolls_back_without_its_audit_row(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], failing_request_id: str
) -> None:
    response = await api.post(
        """mutation { createPatient(input: {mrn: "AUD-1", givenName: "Ann", familyName: "Lee",
             dateOfBirth: "1990-01-01", sex: FEMALE}) { patient { id } } }""",
        token=api.token(),
        headers={"X-Request-ID": failing_request_id},
    )
    assert error_codes(response.json()) == ["INTERNAL_SERVER_ERROR"]
    async with sessionmaker() as session:
        count = await session.scalar(select(func.count()).where(Patient.tenant_id == api.tenant_id))
    assert count == 0
