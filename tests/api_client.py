"""Calling the API the way clients do: JSON over HTTP POST with a bearer token."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select

from models import AuditEvent

if TYPE_CHECKING:
    import httpx
    from asyncpg.connection import LoggedQuery
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from app.ops.dev_issuer import LocalTokenIssuer


class Api:
    def __init__(self, client: httpx.AsyncClient, issuer: LocalTokenIssuer, tenant_id: str) -> None:
        self.client = client
        self.issuer = issuer
        self.tenant_id = tenant_id

    def token(
        self,
        *,
        subject: str = "admin-subject",
        groups: Sequence[str] = ("admin",),
        tenant_id: str | bool | None = True,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """``tenant_id=True`` means the test's own tenant, ``None`` no tenant claim at all."""
        tenant = self.tenant_id if tenant_id is True else tenant_id
        return self.issuer.issue(
            subject, groups=groups, tenant_id=tenant or None, extra_claims=claims or None
        )

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.client.post("/graphql", json=body, headers=sent)

    async def query(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """The JSON body; ``token=None`` uses an admin token of the test's tenant."""
        response = await self.post(query, variables, token=token or self.token())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """The data of a query that must succeed."""
        body = await self.query(query, variables, token=token)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


class StatementLog:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


# What asyncpg's query logger also reports but SQLAlchemy's cursor events never did: transaction
# control, and asyncpg's own type introspection before it first encodes a type.
_DRIVER_HOUSEKEEPING = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b"
    r"|WITH RECURSIVE typeinfo_tree|set_config\('jit'",
    re.IGNORECASE,
)


@asynccontextmanager
async def count_statements(engine: AsyncEngine) -> AsyncIterator[StatementLog]:
    """Every SQL statement the engine sends while the block runs: through SQLAlchemy (its cursor
    events) or on asyncpg's connection directly (app/data/database.py's DriverStatement), which
    asyncpg's query logger reports, from a callback it schedules on the loop."""
    log = StatementLog()
    drivers: list[Any] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        log.statements.append(statement)

    def record_driver(query: LoggedQuery) -> None:
        if _DRIVER_HOUSEKEEPING.search(query.query) is None:
            log.statements.append(query.query)

    def watch(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        driver.add_query_logger(record_driver)
        drivers.append(driver)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    event.listen(engine.sync_engine, "checkout", watch)
    try:
        yield log
        await asyncio.sleep(0)  # the query logger's callbacks for the block's last statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        event.remove(engine.sync_engine, "checkout", watch)
        for driver in drivers:
            driver.remove_query_logger(record_driver)


# The contract's error codes (its README, "Errors"): every error the API returns carries one.
CONTRACT_CODES = frozenset(
    {
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "NOT_FOUND",
        "BAD_USER_INPUT",
        "CONFLICT",
        "INVALID_TRANSITION",
        "QUERY_TOO_COMPLEX",
        "RATE_LIMITED",
        "INTERNAL_SERVER_ERROR",
    }
)


def uncoded_errors(body: object) -> list[object]:
    """The errors of a response body without one of the contract's codes; [] when all have."""
    if not isinstance(body, dict):
        return [body]
    errors = body.get("errors") or []
    return [
        error
        for error in errors
        if not isinstance(error, dict)
        or (error.get("extensions") or {}).get("code") not in CONTRACT_CODES
    ]


async def audit_rows(
    sessionmaker: async_sessionmaker[AsyncSession], request_id: str
) -> list[dict[str, Any]]:
    """The audit rows a request (by its X-Request-ID) appended, oldest first."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(*AuditEvent.__table__.c)
                .where(AuditEvent.request_id == request_id)
                .order_by(AuditEvent.id)
            )
        ).all()
    return [dict(row._mapping) for row in rows]
