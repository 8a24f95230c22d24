"""If the audit row cannot be written, the request fails and changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models import Patient
from tests.api_client import Api, error_codes
from tests.factories import Factory


@pytest.fixture
async def failing_request_id(engine: AsyncEngine) -> AsyncIterator[str]:
    """A request id whose audit row PostgreSQL refuses to store (a real failure, not a mock)."""
    request_id = f"audit-fail-{uuid.uuid4().hex[:8]}"
    name = request_id.replace("-", "_")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit store unavailable'; END; $$"
            )
        )
        await connection.execute(
            text(
                f"CREATE TRIGGER {name} BEFORE INSERT ON audit_events FOR EACH ROW "
                f"WHEN (NEW.request_id = '{request_id}') EXECUTE FUNCTION {name}()"
            )
        )
    yield request_id
    async with engine.begin() as connection:
        await connection.execute(text(f"DROP TRIGGER {name} ON audit_events"))
        await connection.execute(text(f"DROP FUNCTION {name}()"))


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
