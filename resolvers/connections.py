"""Turning a fetched page of rows (one extra row included) into a connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from schema.connections import Connection, connection

if TYPE_CHECKING:
    from app.opaque_ids import OpaqueIds
    from app.pagination import KeysetOrder, PageRequest

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT")


def page_connection(
    rows: Sequence[RowT],
    nodes: Callable[[Sequence[RowT]], list[NodeT]],
    *,
    ids: OpaqueIds,
    order: KeysetOrder,
    page: PageRequest,
    count: Callable[[], Awaitable[int]],
) -> Connection[NodeT]:
    shown = rows[: page.first]
    return connection(
        nodes(shown),
        [ids.encode_cursor(order.kind, order.cursor_values(row)) for row in shown],
        has_next_page=len(rows) > page.first,
        # Forward paging only: rows precede the cursor's position when a cursor was given.
        has_previous_page=page.after is not None,
        count=count,
    )
