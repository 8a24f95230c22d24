"""The async engine and session factory."""

from __future__ import annotations

from collections import namedtuple
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:
    from sqlalchemy import Result

    from app.settings import Settings

# What the read statements run on: an ORM session inside a write's transaction, or a plain
# connection (cheaper per statement) for the reads of a request (app/request_reads.py).
Reader: TypeAlias = AsyncSession | AsyncConnection

# A row of a read statement: a named tuple of its columns (see fetched_rows).
FetchedRow: TypeAlias = Any


def fetched_rows(result: Result[Any]) -> list[FetchedRow]:
    """The result's rows as named tuples.

    SQLAlchemy's ``Row`` reads a column by name through ``__getattr__``, about 1 us each (an
    AttributeError is raised and caught inside); a named tuple reads it in tens of ns, and a
    large page reads every column of every row.
    """
    make = _row_class(tuple(result.keys()))._make
    return [make(row) for row in result.all()]


@cache
def _row_class(columns: tuple[str, ...]) -> Any:
    return namedtuple("FetchedRow", columns)


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=settings.db_pool_pre_ping,
        # JSONB columns (vital signs, prescriptions, lab results) are decoded for every record
        # a query reads; orjson does it several times faster than the standard library.
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
        connect_args={
            "server_settings": {"statement_timeout": str(settings.db_statement_timeout_ms)}
        },
    )


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects read in a transaction stay usable after it, without lazy I/O.
    return async_sessionmaker(engine, expire_on_commit=False)
