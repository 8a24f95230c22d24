"""Alembic environment: async engine, URL from the caller or from MEDREC_DATABASE_URL."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from app.data.audit_partitions import is_partition_name
from app.data.database import UNNAMED_STATEMENTS
from app.settings import Settings
from models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """The audit tables' monthly partitions are made at run time (app/data/audit_partitions.py),
    not declared: autogenerate leaves them alone."""
    return not (type_ == "table" and name is not None and is_partition_name(name))


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    return url or Settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        include_name=include_name,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, include_name=include_name
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    # Unnamed statements: migrations may run through a transaction pooler (app/data/database.py).
    engine = create_async_engine(
        _database_url(), poolclass=pool.NullPool, connect_args=dict(UNNAMED_STATEMENTS)
    )
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
