"""Keyset pagination: pages are ``WHERE (order columns) < (cursor values) ORDER BY ... LIMIT n``.

A page is fetched with one extra row to learn whether another page follows. Nested connections
fetch the first rows of every parent in one statement (``CROSS JOIN LATERAL`` over the parent ids;
a plain ``WHERE`` for one parent).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, any_, bindparam, func, select, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from app.data.database import fetched_rows
from app.domain import validation
from app.domain.errors import BadUserInput

if TYPE_CHECKING:
    from sqlalchemy import BindParameter, ColumnElement, Select
    from sqlalchemy.orm import InstrumentedAttribute

    from app.data.database import FetchedRow, Reader
    from app.domain.opaque_ids import OpaqueIds

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class KeysetOrder:
    """The order of one kind of list; ``kind`` also keeps one list's cursors out of another."""

    kind: str
    columns: tuple[InstrumentedAttribute[Any], ...]
    descending: bool
    decoders: tuple[Callable[[Any], Any], ...]

    def order_by(self) -> list[ColumnElement[Any]]:
        return [c.desc() if self.descending else c.asc() for c in self.columns]

    def after(self, values: tuple[Any, ...]) -> ColumnElement[bool]:
        # A row comparison matches the index order because all columns share one direction.
        row = tuple_(*self.columns)
        return row < tuple_(*values) if self.descending else row > tuple_(*values)

    def cursor_values(self, row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, c.key) for c in self.columns)

    def decode(self, ids: OpaqueIds, cursor: str) -> tuple[Any, ...]:
        raw = ids.decode_cursor(self.kind, cursor)
        if len(raw) != len(self.decoders):
            raise BadUserInput("after: malformed cursor")
        try:
            return tuple(decode(value) for decode, value in zip(self.decoders, raw, strict=True))
        except (TypeError, ValueError):
            raise BadUserInput("after: malformed cursor") from None


# A cursor's values go into the page's statement: the rules of every other input apply to them,
# since one signed with a leaked or default key can carry anything.


def parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(value)
    return validation.instant(datetime.fromisoformat(value), "after")


def parse_uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise TypeError(value)
    return uuid.UUID(value)


def parse_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(value)
    return validation.bigint(value, "after")


def parse_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return validation.storable_text(value, "after")


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int
    after: tuple[Any, ...] | None

    @property
    def limit(self) -> int:
        return self.first + 1


class RowsShown(enum.Flag):
    """Which rows of a page the response shows, for the audit row to name: all of them (its
    edges), or only those its pageInfo's startCursor and endCursor point at."""

    NONE = 0
    FIRST = enum.auto()
    LAST = enum.auto()
    ALL = enum.auto()


def shown_rows(rows: Sequence[Any], shown: RowsShown) -> Sequence[Any]:
    """The rows of a page (in order) that ``shown`` selects; the first and last stay first and
    last, so a page's cursors read from them are the page's own."""
    if RowsShown.ALL in shown or len(rows) <= 1:
        return rows if shown else rows[:0]
    return [
        *(rows[:1] if RowsShown.FIRST in shown else ()),
        *(rows[-1:] if RowsShown.LAST in shown else ()),
    ]


def requested_page_size(first: int | None) -> int:
    """The rows a connection's ``first`` (as graphql-core coerced it) asks for: null means the
    default. The cost estimate (schema/limits.py) reads page sizes through this too."""
    return DEFAULT_PAGE_SIZE if first is None else first


def page_request(
    ids: OpaqueIds, order: KeysetOrder, first: int | None, after: str | None
) -> PageRequest:
    first = requested_page_size(first)
    if first < 0:
        raise BadUserInput("first: must not be negative")
    if first > MAX_PAGE_SIZE:
        raise BadUserInput(f"first: must be at most {MAX_PAGE_SIZE}")
    return PageRequest(first, None if after is None else order.decode(ids, after))


_UUID_ARRAY = ARRAY(UUID(as_uuid=True))


def uuid_array(name: str) -> BindParameter[Any]:
    """``= ANY(:ids)``, one array parameter, keeps the statement text the same whatever the batch
    size; the ids are passed as a list when the statement runs."""
    return bindparam(name, type_=_UUID_ARRAY)


def paged(
    statement: Select[Any], order: KeysetOrder, after: bool, *, size_in_text: bool = False
) -> Select[Any]:
    """One page of ``statement``, its cursor and size as bind parameters (``page_parameters``), so
    the paged statement can be built once per shape. ``size_in_text`` writes the size into the
    statement's text instead (one prepared statement per size): PostgreSQL then plans it once for
    all callers, where with a parameter for a limit it keeps planning anew for each (it estimates
    a tenth of the rows and finds that plan dearer). For partitioned tables, whose planning costs
    more than running the page."""
    if after:
        statement = statement.where(
            order.after(
                tuple(
                    bindparam(f"after_{i}", type_=column.type)
                    for i, column in enumerate(order.columns)
                )
            )
        )
    size = bindparam("limit", type_=Integer(), literal_execute=size_in_text)
    return statement.order_by(*order.order_by()).limit(size)


def page_parameters(page: PageRequest) -> dict[str, Any]:
    parameters: dict[str, Any] = {"limit": page.limit}
    if page.after is not None:
        parameters.update((f"after_{i}", value) for i, value in enumerate(page.after))
    return parameters


@dataclass(frozen=True, slots=True)
class RowsPerParent:
    """The first page of rows of each parent: ``many`` for any number of parents
    (``:parent_ids``), ``one`` for a single parent (``:parent_id``).

    A batch of one, the common case, runs ``one``: its cost does not hang on the length of an
    array PostgreSQL cannot see, so after a few runs it keeps one generic plan for it instead of
    planning every run anew (for the partitioned access log, most of its time)."""

    many: Select[Any]
    one: Select[Any]
    parent_column: InstrumentedAttribute[Any]


def rows_per_parent_statement(
    statement: Select[Any],
    parent_column: InstrumentedAttribute[Any],
    order: KeysetOrder,
    after: bool,
    *,
    size_in_text: bool = False,
) -> RowsPerParent:
    """The first page of ``statement``'s rows for each parent, in one statement.

    ``statement`` selects one table's rows, already filtered by access and filters.
    ``size_in_text`` as for ``paged``.
    """
    parents = (
        func.unnest(uuid_array("parent_ids"))
        .table_valued("parent_id")
        .render_derived(name="parents")
    )
    of_parent = statement.where(parent_column == parents.c.parent_id)
    per_parent = paged(of_parent, order, after, size_in_text=size_in_text).lateral()
    of_one = statement.where(parent_column == bindparam("parent_id", type_=UUID(as_uuid=True)))
    return RowsPerParent(
        many=select(per_parent).select_from(parents).join(per_parent, true()),
        one=paged(of_one, order, after, size_in_text=size_in_text),
        parent_column=parent_column,
    )


def count_per_parent_statement(
    statement: Select[Any], parent_column: InstrumentedAttribute[Any]
) -> Select[Any]:
    """``statement`` is a filtered ``select(...)`` of the child table; counted per parent."""
    return (
        statement.with_only_columns(parent_column, func.count())
        .where(parent_column == any_(uuid_array("parent_ids")))
        .group_by(parent_column)
    )


async def first_rows_per_parent(
    session: Reader,
    statements: RowsPerParent,
    parameters: dict[str, Any],
    parent_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, list[FetchedRow]]:
    """Runs a ``rows_per_parent_statement`` with ``parameters`` (access, filters, page)."""
    if len(parent_ids) == 1:
        result = await session.execute(statements.one, {**parameters, "parent_id": parent_ids[0]})
    else:
        result = await session.execute(
            statements.many, {**parameters, "parent_ids": list(parent_ids)}
        )
    grouped: dict[uuid.UUID, list[FetchedRow]] = {parent_id: [] for parent_id in parent_ids}
    for row in fetched_rows(result):
        grouped[getattr(row, statements.parent_column.key)].append(row)
    return grouped


async def count_per_parent(
    session: Reader,
    statement: Select[Any],
    parameters: dict[str, Any],
    parent_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, int]:
    """Runs a ``count_per_parent_statement`` with ``parameters`` (access, filters)."""
    result = await session.execute(statement, {**parameters, "parent_ids": list(parent_ids)})
    counts: dict[uuid.UUID, int] = {parent: n for parent, n in result.all()}
    return {parent_id: counts.get(parent_id, 0) for parent_id in parent_ids}
