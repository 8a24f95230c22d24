"""The migrations build exactly the declared tables, and undo cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrations
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
