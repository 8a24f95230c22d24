"""The async engine and session factory."""

from __future__ import annotations

import warnings
import weakref
from collections import namedtuple
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import orjson
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import QueuePool

from app.data.pool_waits import WaitCountingPool

if TYPE_CHECKING:
    from collections.abc import Callable

    import asyncpg
    from sqlalchemy import Result
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.compiler import SQLCompiler
    from sqlalchemy.sql.elements import ClauseElement

    from app.settings import Settings

# What the read statements run on: an ORM session inside a write's transaction, or a plain
# connection (cheaper per statement) for the reads of a request (app/data/request_reads.py).
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


class DriverStatement:
    """A statement compiled once and run on asyncpg's own connection.

    On every execute SQLAlchemy derives a cache key from the whole statement, then builds an
    execution context and a result: for a tree statement (app/data/repositories/json_trees.py) that
    was a quarter of a one-patient request's CPU. Here the text, the order of the parameters and
    their bind processors are worked out once; asyncpg keeps the statement prepared per
    connection. The connection comes from app/data/request_reads.py (``driver``): the statement runs
    outside SQLAlchemy's transaction bookkeeping, in autocommit, and its errors are asyncpg's own.
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast("SQLCompiler", statement.compile(dialect=dialect))
        names = compiled.positiontup
        if names is None or compiled.post_compile_params or compiled.escaped_bind_names:
            raise ValueError("a statement with plain positional parameters only")
        binds = compiled.binds
        self.sql = compiled.string
        self._names = tuple(names)
        self._defaults = {
            name: bind.effective_value for name, bind in binds.items() if not bind.required
        }
        self._processors: tuple[Callable[[Any], Any] | None, ...] = tuple(
            binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )

    async def fetchrow(
        self, connection: asyncpg.Connection, values: Mapping[str, Any]
    ) -> asyncpg.Record | None:
        return await connection.fetchrow(self.sql, *self._arguments(values))

    async def execute(self, connection: asyncpg.Connection, values: Mapping[str, Any]) -> None:
        await connection.execute(self.sql, *self._arguments(values))

    def _arguments(self, values: Mapping[str, Any]) -> list[Any]:
        defaults = self._defaults
        arguments = []
        for name, process in zip(self._names, self._processors, strict=True):
            value = values[name] if name in values else defaults[name]
            arguments.append(value if process is None else process(value))
        return arguments


# Pools configured (create_engine) so that taking an idle connection and giving one back need no
# I/O: no pre-ping, no recycling, and the connection given back last is taken first, so one that
# must reconnect is the next one SQLAlchemy's own checkout takes (request_reads' _take).
_DIRECT_POOLS: weakref.WeakSet[QueuePool] = weakref.WeakSet()


def allow_direct_checkout(engine: AsyncEngine) -> None:
    """For an engine whose QueuePool never pre-pings or recycles and is last in, first out."""
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    _DIRECT_POOLS.add(pool)
    # When request_reads' _take finds a connection to reconnect, SQLAlchemy closes the connect
    # coroutine it will not run off its greenlet, and Python would warn that it was never
    # awaited. (Set once here: a catch_warnings around every checkout cost more than it.)
    warnings.filterwarnings(
        "ignore", "coroutine 'connect' was never awaited", RuntimeWarning, r"sqlalchemy\."
    )


def direct_pool(engine: AsyncEngine) -> QueuePool | None:
    """``engine``'s pool when app/data/request_reads.py may take and give back its connections
    directly (see allow_direct_checkout)."""
    pool = engine.sync_engine.pool
    return pool if isinstance(pool, QueuePool) and pool in _DIRECT_POOLS else None


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    """The pool of ``url`` (a replica's), else of the primary, ``settings.database_url``."""
    engine = create_async_engine(
        url or settings.database_url,
        poolclass=WaitCountingPool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=settings.db_pool_pre_ping,
        # The connection given back last is taken first: fewer connections stay busy, with warm
        # statement caches, and app/data/request_reads.py's direct checkout relies on it.
        pool_use_lifo=True,
        # JSONB columns (vital signs, prescriptions, lab results) are decoded for every record
        # a query reads; orjson does it several times faster than the standard library.
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
        connect_args=_connect_args(settings),
    )
    if not settings.db_pool_pre_ping:  # a ping is I/O at every checkout
        allow_direct_checkout(engine)
    return engine


# Behind a transaction pooler the next transaction may run on another server session, where a
# statement prepared by name does not exist. With these connect arguments asyncpg and SQLAlchemy
# prepare unnamed statements, which asyncpg parses, binds and runs before one Sync: one session.
UNNAMED_STATEMENTS: Mapping[str, int] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
}


def _connect_args(settings: Settings) -> dict[str, Any]:
    timeout_ms = settings.db_statement_timeout_ms
    if settings.db_pool_mode == "session":
        return {"server_settings": {"statement_timeout": str(timeout_ms)}}
    # A transaction pooler refuses settings sent at connect (PgBouncer does): asyncpg keeps the
    # time instead, and cancels a statement that runs longer, or waits that long for a server.
    return {**UNNAMED_STATEMENTS, "command_timeout": timeout_ms / 1000}


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects read in a transaction stay usable after it, without lazy I/O.
    return async_sessionmaker(engine, expire_on_commit=False)
