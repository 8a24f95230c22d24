"""Relay-style connections. ``totalCount`` costs a statement, so it runs only when selected."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry

from schema.leaves import plain_resolver

NodeT = TypeVar("NodeT")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    node: NodeT
    row: strawberry.Private[Any]
    cursor_of: strawberry.Private[Callable[[Any], str]]

    # Sealed only when selected: large nested pages rarely ask for their cursors.
    @strawberry.field
    @plain_resolver
    def cursor(self) -> str:
        return self.cursor_of(self.row)


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        return await self.count()


def connection(
    rows: Sequence[Any],
    nodes: Sequence[NodeT],
    cursor_of: Callable[[Any], str],
    *,
    has_next_page: bool,
    has_previous_page: bool,
    count: Callable[[], Awaitable[int]],
) -> Connection[NodeT]:
    """One edge per row and its node; ``cursor_of`` makes a row's cursor."""
    return Connection(
        edges=[
            Edge(node=node, row=row, cursor_of=cursor_of)
            for row, node in zip(rows, nodes, strict=True)
        ],
        page_info=PageInfo(
            has_next_page=has_next_page,
            has_previous_page=has_previous_page,
            start_cursor=cursor_of(rows[0]) if rows else None,
            end_cursor=cursor_of(rows[-1]) if rows else None,
        ),
        count=count,
    )
