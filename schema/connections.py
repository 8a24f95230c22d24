"""Relay-style connections: their types, what a query selects under one, and their assembly
from a fetched page of rows (one extra row included). ``totalCount`` costs a statement, so it runs
only when selected."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import strawberry
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from app.data.pagination import RowsShown, shown_rows
from schema.leaves import plain_resolver

if TYPE_CHECKING:
    from strawberry.types.nodes import Selection

    from app.data.database import Reader
    from app.data.pagination import KeysetOrder, PageRequest
    from app.domain.opaque_ids import OpaqueIds
    from app.domain.viewer import Viewer
    from resolvers.context import Info, RequestContext

NodeT = TypeVar("NodeT")
EdgeT = TypeVar("EdgeT")


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
        edges=edges(rows, nodes, cursor_of, Edge[NodeT]),
        page_info=page_info(
            rows, cursor_of, has_next_page=has_next_page, has_previous_page=has_previous_page
        ),
        count=count,
    )


def edges(
    rows: Sequence[Any],
    nodes: Sequence[Any],
    cursor_of: Callable[[Any], str],
    edge: Callable[..., EdgeT],
) -> list[EdgeT]:
    """``edge``: the edge type (a connection the contract names its own edges for has one)."""
    return [
        edge(node=node, row=row, cursor_of=cursor_of) for row, node in zip(rows, nodes, strict=True)
    ]


def page_info(
    rows: Sequence[Any],
    cursor_of: Callable[[Any], str],
    *,
    has_next_page: bool,
    has_previous_page: bool,
) -> PageInfo:
    """Forward paging only: rows precede the page when a cursor was given."""
    return PageInfo(
        has_next_page=has_next_page,
        has_previous_page=has_previous_page,
        start_cursor=cursor_of(rows[0]) if rows else None,
        end_cursor=cursor_of(rows[-1]) if rows else None,
    )


def node_fields(info: Info, owner: str) -> frozenset[str]:
    """The fields the query selects on `edges { node { ... } }` of the connection being resolved,
    through fragments too (directives aside: a skipped field only costs a prefetch).

    ``owner`` names the type holding the connection: one response path (list indices aside) is
    one merged field, except where fragments on different types use the same response name.
    """
    path = (owner, *(key for key in info.path.as_list() if isinstance(key, str)))
    known = info.context.node_selections
    names = known.get(path)
    if names is None:
        names = known[path] = _node_fields(info.selected_fields)
    return names


def shows_rows(info: Info, owner: str) -> RowsShown:
    """Which rows of the connection being resolved the response shows: all (its edges), those
    its pageInfo's cursors point at, or none (only their count or whether more follow). The
    audit row names only rows the caller is shown."""
    path = (owner, *(key for key in info.path.as_list() if isinstance(key, str)))
    known = info.context.shown_rows
    shown = known.get(path)
    if shown is None:
        shown = RowsShown.NONE
        for current in _fields(info.selected_fields):
            if _fields(current.selections, "edges"):
                shown |= RowsShown.ALL
            for page_info in _fields(current.selections, "pageInfo"):
                if _fields(page_info.selections, "startCursor"):
                    shown |= RowsShown.FIRST
                if _fields(page_info.selections, "endCursor"):
                    shown |= RowsShown.LAST
        known[path] = shown
    return shown


def _node_fields(selected: list[Selection]) -> frozenset[str]:
    names: set[str] = set()
    for current in _fields(selected):
        for edges in _fields(current.selections, "edges"):
            for node in _fields(edges.selections, "node"):
                names.update(field.name for field in _fields(node.selections))
    return frozenset(names)


def _fields(selections: list[Selection], name: str | None = None) -> list[SelectedField]:
    found: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            if name is None or selection.name == name:
                found.append(selection)
        elif isinstance(selection, FragmentSpread | InlineFragment):
            found.extend(_fields(selection.selections, name))
    return found


async def page_connection(
    rows: Sequence[Any],
    node: Callable[[Any], NodeT],
    *,
    ids: OpaqueIds,
    order: KeysetOrder,
    page: PageRequest,
    count: Callable[[], Awaitable[int]],
    shown: RowsShown,
    prefetch: Callable[[list[NodeT]], Awaitable[None]] | None = None,
) -> Connection[NodeT]:
    """``prefetch`` loads what the query selects on the page's nodes (schema/types.py's
    prefetch_selected).
    Only the rows ``shown`` (``shows_rows``) become nodes: nothing of the others is answered."""

    def cursor_of(row: Any) -> str:
        return ids.encode_cursor(order.kind, order.cursor_values(row))

    page_rows = shown_rows(rows[: page.first], shown)
    nodes = [node(row) for row in page_rows]
    if prefetch is not None:
        await prefetch(nodes)
    return connection(
        page_rows,
        nodes,
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
    fetch: Callable[[Reader, PageRequest], Awaitable[Sequence[Any]]],
    count: Callable[[Reader], Awaitable[int]],
    node: Callable[[Any], NodeT],
    shown: RowsShown,
    prefetch: Callable[[list[NodeT]], Awaitable[None]] | None = None,
) -> Connection[NodeT]:
    """A top-level list: one statement for the page, one more only if totalCount is selected."""
    async with context.reads() as session:
        rows = await fetch(session, page)

    async def total() -> int:
        async with context.reads() as session:
            return await count(session)

    return await page_connection(
        rows,
        node,
        ids=context.ids,
        order=order,
        page=page,
        count=total,
        shown=shown,
        prefetch=prefetch,
    )
