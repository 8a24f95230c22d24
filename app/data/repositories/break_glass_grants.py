"""Break-glass grant reads, built once per role and shape like the other reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, exists, func, select

from app.data.database import DriverStatement, fetched_rows
from app.data.pagination import KeysetOrder, page_parameters, paged, parse_datetime, parse_uuid
from app.data.repositories.batched import rows_by_ids
from app.domain.access import grant_active, readable_columns, readable_grants_for, viewer_parameters
from app.domain.viewer import effective_role
from models import BreakGlassGrant, table_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import ColumnElement, Dialect, Select

    from app.data.database import FetchedRow, Reader
    from app.data.pagination import PageRequest
    from app.data.request_reads import Driver
    from app.domain.viewer import Viewer
    from models.enums import Role

GRANT_ORDER = KeysetOrder(
    "break_glass_grants",
    (BreakGlassGrant.granted_at, BreakGlassGrant.id),
    descending=True,
    decoders=(parse_datetime, parse_uuid),
)

_FILTERS: dict[str, ColumnElement[bool]] = {
    "patient_id": BreakGlassGrant.patient_id == bindparam("patient_id"),
    "active_only": grant_active(),
}


@dataclass(frozen=True, slots=True)
class GrantListFilter:
    patient_id: uuid.UUID | None = None
    active_only: bool = False

    def parameters(self) -> dict[str, Any]:
        """The filters that are set, by name (see ``_FILTERS``), with their values."""
        parameters: dict[str, Any] = {}
        if self.patient_id is not None:
            parameters["patient_id"] = self.patient_id
        if self.active_only:
            parameters["active_only"] = True
        return parameters


@cache
def _filtered(role: Role | None, filters: frozenset[str]) -> Select[Any]:
    return select(*readable_columns(table_of(BreakGlassGrant), role)).where(
        readable_grants_for(role),
        *(predicate for name, predicate in _FILTERS.items() if name in filters),
    )


@cache
def _page(role: Role | None, filters: frozenset[str], after: bool) -> Select[Any]:
    return paged(_filtered(role, filters), GRANT_ORDER, after)


@cache
def _after(role: Role | None) -> Select[Any]:
    return (
        _filtered(role, frozenset())
        .where(BreakGlassGrant.sequence > bindparam("after"))
        .order_by(BreakGlassGrant.sequence)
        .limit(bindparam("limit"))
    )


async def grants_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[FetchedRow]:
    return await rows_by_ids(session, viewer, BreakGlassGrant, readable_grants_for, ids)


async def grant_page(
    session: Reader, viewer: Viewer, filter_: GrantListFilter, page: PageRequest
) -> list[FetchedRow]:
    filters = filter_.parameters()
    statement = _page(effective_role(viewer), frozenset(filters), page.after is not None)
    parameters = {**viewer_parameters(viewer), **filters, **page_parameters(page)}
    return fetched_rows(await session.execute(statement, parameters))


async def count_grants(session: Reader, viewer: Viewer, filter_: GrantListFilter) -> int:
    filters = filter_.parameters()
    statement = _filtered(effective_role(viewer), frozenset(filters)).with_only_columns(
        func.count()
    )
    return (await session.execute(statement, {**viewer_parameters(viewer), **filters})).scalar_one()


_HOLDS_ACTIVE = select(
    exists().where(
        BreakGlassGrant.tenant_id == bindparam("tenant_id", type_=String()),
        BreakGlassGrant.subject == bindparam("subject", type_=String()),
        grant_active(),
    )
)


@cache
def _holds_active(dialect: Dialect) -> DriverStatement:
    return DriverStatement(_HOLDS_ACTIVE, dialect)


async def holds_active_grant(driver: Driver, viewer: Viewer) -> bool:
    """Whether ``viewer`` holds a grant that grants now, as ``driver``'s database sees it. Run on
    the driver: a request that reads only trees never takes SQLAlchemy's connection."""
    row = await _holds_active(driver.dialect).fetchrow(
        driver.connection, {"tenant_id": viewer.tenant_id, "subject": viewer.subject}
    )
    return row is not None and bool(row[0])


async def latest_grant(session: Reader, viewer: Viewer) -> int:
    """The position of the newest grant of the viewer's tenant (0 before the first)."""
    latest = await session.scalar(
        select(func.max(BreakGlassGrant.sequence)).where(
            BreakGlassGrant.tenant_id == viewer.tenant_id
        )
    )
    return int(latest or 0)


async def grants_after(session: Reader, viewer: Viewer, after: int, limit: int) -> list[FetchedRow]:
    """The grants the viewer may read made after position ``after``, in the order they were."""
    statement = _after(effective_role(viewer))
    parameters = {**viewer_parameters(viewer), "after": after, "limit": limit}
    return fetched_rows(await session.execute(statement, parameters))
