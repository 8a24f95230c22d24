"""The two statement shapes every DataLoader batch uses: rows by id, and rows by parent id.

Each is built once per table and role (the predicates name the viewer by bind parameters), and
run with the viewer's values and the ids as parameters.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import any_, select

from app.data.database import fetched_rows
from app.data.pagination import uuid_array
from app.domain.access import readable_columns, viewer_parameters
from app.domain.viewer import effective_role
from models import table_of

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable, Sequence

    from sqlalchemy import ColumnElement, Select
    from sqlalchemy.orm import InstrumentedAttribute

    from app.data.database import FetchedRow, Reader
    from app.domain.viewer import Viewer
    from models import Base
    from models.enums import Role

    # A predicate of app/domain/access.py: which rows of one table a role may read.
    Readable = Callable[[Role | None], ColumnElement[bool]]


@cache
def _by_ids(model: type[Base], readable: Readable, role: Role | None) -> Select[Any]:
    table = table_of(model)
    return select(*readable_columns(table, role)).where(
        readable(role), table.c.id == any_(uuid_array("ids"))
    )


@cache
def _by_parent(
    parent_column: InstrumentedAttribute[Any],
    readable: Readable,
    order_by: tuple[InstrumentedAttribute[Any], ...],
    role: Role | None,
) -> Select[Any]:
    return (
        select(*readable_columns(table_of(parent_column.parent.class_), role))
        .where(readable(role), parent_column == any_(uuid_array("parent_ids")))
        .order_by(parent_column, *order_by)
    )


async def rows_by_ids(
    session: Reader,
    viewer: Viewer,
    model: type[Base],
    readable: Readable,
    ids: Sequence[uuid.UUID],
) -> list[FetchedRow]:
    statement = _by_ids(model, readable, effective_role(viewer))
    result = await session.execute(statement, {**viewer_parameters(viewer), "ids": list(ids)})
    return fetched_rows(result)


async def rows_by_parent(
    session: Reader,
    viewer: Viewer,
    parent_column: InstrumentedAttribute[Any],
    readable: Readable,
    parent_ids: Sequence[uuid.UUID],
    order_by: tuple[InstrumentedAttribute[Any], ...],
) -> dict[uuid.UUID, list[FetchedRow]]:
    """Every readable child of each parent, in ``order_by`` order, in one statement."""
    statement = _by_parent(parent_column, readable, order_by, effective_role(viewer))
    parameters = {**viewer_parameters(viewer), "parent_ids": list(parent_ids)}
    grouped: dict[uuid.UUID, list[FetchedRow]] = defaultdict(list)
    for row in fetched_rows(await session.execute(statement, parameters)):
        grouped[getattr(row, parent_column.key)].append(row)
    return {parent_id: grouped.get(parent_id, []) for parent_id in parent_ids}
