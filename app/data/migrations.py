"""Alembic, driven from Python (``medrec migrate``, ``medrec dev``, the tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.config import Config
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from app.data.audit_partitions import maintain_partitions
from app.data.database import UNNAMED_STATEMENTS

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking: runs its own event loop, so call it outside one (or in a thread). At head, the
    audit partitions due ahead are made too."""
    command.upgrade(alembic_config(database_url), revision)
    if revision == "head":
        asyncio.run(_make_audit_partitions(database_url))


async def _make_audit_partitions(database_url: str) -> None:
    engine = create_async_engine(
        database_url, poolclass=pool.NullPool, connect_args=dict(UNNAMED_STATEMENTS)
    )
    try:
        await maintain_partitions(engine, retention_months=None)
    finally:
        await engine.dispose()


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision(database_url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
