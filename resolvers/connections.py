"""Turning a fetched page of rows (one extra row included) into a connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from schema.connections import Connection, connection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.context import RequestContext
    from app.opaque_ids import OpaqueIds
    from app.pagination import KeysetOrder, PageRequest
    from app.viewer import Viewer

NodeT = TypeVar("NodeT")


def page_connection(
    rows: Sequence[Any],
    node: Callable[[Any], NodeT],
    *,
    ids: OpaqueIds,
    order: KeysetOrder,
    page: PageRequest,
    count: Callable[[], Awaitable[int]],
) -> Connection[NodeT]:
    def cursor_of(row: Any) -> str:
        return ids.encode_cursor(order.kind, order.cursor_values(row))

    return connection(
        rows[: page.first],
        node,
        cursor_of,
        has_next_page=len(rows) > page.first,
        # Forward paging only: rows precede the cursor's position when a cursor was given.
        has_previous_page=page.after is not None,
        count=count,
    )


async def root_connection(
    context: RequestContext,
    viewer: Viewer,
    order: KeysetOrder,
    page: PageRequest,
    *,
    fetch: Callable[[AsyncSession, PageRequest], Awaitable[Sequence[Any]]],
    count: Callable[[AsyncSession], Awaitable[int]],
    node: Callable[[Any], NodeT],
) -> Connection[NodeT]:
    """A top-level list: one statement for the page, one more only if totalCount is selected."""
    async with context.reads() as session:
        rows = await fetch(session, page)

    async def total() -> int:
        async with context.reads() as session:
            return await count(session)

    return page_connection(rows, node, ids=context.ids, order=order, page=page, count=total)
