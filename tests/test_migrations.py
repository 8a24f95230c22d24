"""The migrations build exactly the declared tables, and undo cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.data import migrations
from models import Base
from tests.postgres import scratch_database


def _table_names(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            enums = (
                await connection.execute(text("SELECT typname FROM pg_type WHERE typtype = 'e'"))
            ).scalars()
            names |= {f"enum:{name}" for name in enums}
        await engine.dispose()
        return names

    return asyncio.run(read())


def _schema_drift(url: str) -> list[Any]:
    async def compare() -> list[Any]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        await engine.dispose()
        return list(diff)

    return asyncio.run(compare())


@pytest.fixture(scope="module")
def scratch_database_url() -> Any:
    with scratch_database() as url:
        yield url


def test_upgrade_downgrade_upgrade(scratch_database_url: str) -> None:
    migrations.upgrade(scratch_database_url)
    created = _table_names(scratch_database_url)
    assert {
        "providers",
        "patients",
        "medical_records",
        "diagnoses",
        "attachments",
        "record_status_events",
        "audit_events",
        "enum:record_status",
    } <= created

    migrations.downgrade(scratch_database_url, "base")
    assert _table_names(scratch_database_url) == {"alembic_version"}

    migrations.upgrade(scratch_database_url)
    assert _table_names(scratch_database_url) == created


def test_migrations_match_the_models(scratch_database_url: str) -> None:
    migrations.upgrade(scratch_database_url)
    assert _schema_drift(scratch_database_url) == []


def _run(url: str, *statements: str) -> list[Any]:
    """Runs ``statements`` in one transaction; the rows of the last one, if it returns any."""

    async def run() -> list[Any]:
        engine = create_async_engine(url)
        rows: list[Any] = []
        async with engine.begin() as connection:
            for statement in statements:
                result = await connection.execute(text(statement))
                rows = list(result.all()) if result.returns_rows else []
        await engine.dispose()
        return rows

    return asyncio.run(run())


_PROVIDER = (
    "INSERT INTO providers (id, tenant_id, npi, given_name, family_name, cognito_sub) "
    "VALUES (gen_random_uuid(), '{tenant}', '{npi}', 'G', 'F', '{subject}') RETURNING id"
)
_PATIENT = (
    "INSERT INTO patients (id, tenant_id, mrn, given_name, family_name, date_of_birth, sex, "
    "cognito_sub) VALUES (gen_random_uuid(), '{tenant}', '{mrn}', 'G', 'F', '1980-01-01', "
    "'FEMALE', '{subject}') RETURNING id"
)


def test_the_subject_links_migration_refuses_subjects_linked_twice_and_says_how_many() -> None:
    with scratch_database() as url:
        migrations.upgrade(url, "c4e1a9d07b21")
        _run(
            url,
            # Linked in two tenants, as a provider and a patient.
            _PROVIDER.format(tenant="a", npi="1234567893", subject="shared-1"),
            _PATIENT.format(tenant="b", mrn="M1", subject="shared-1"),
            # Linked to two patients of different tenants.
            _PATIENT.format(tenant="a", mrn="M2", subject="shared-2"),
            _PATIENT.format(tenant="b", mrn="M2", subject="shared-2"),
            _PATIENT.format(tenant="a", mrn="M3", subject="alone"),
        )

        with pytest.raises(RuntimeError, match=r"^2 Cognito subject\(s\) are linked to more"):
            migrations.upgrade(url)
        assert _run(url, "SELECT version_num FROM alembic_version") == [("c4e1a9d07b21",)]
        assert "subject_links" not in _table_names(url)

        _run(url, "UPDATE patients SET cognito_sub = NULL WHERE tenant_id = 'b'")
        migrations.upgrade(url)
        linked = _run(url, "SELECT subject FROM subject_links ORDER BY subject")
        assert linked == [("alone",), ("shared-1",), ("shared-2",)]
