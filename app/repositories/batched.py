"""The two statement shapes every DataLoader batch uses: rows by id, and rows by parent id."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import any_, select

from app.pagination import uuid_array

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    from sqlalchemy import ColumnElement, Row
    from sqlalchemy.orm import InstrumentedAttribute

    from app.database import Reader
    from models import Base


async def rows_by_ids(
    session: Reader,
    model: type[Base],
    readable: ColumnElement[bool],
    ids: Sequence[uuid.UUID],
) -> list[Row[Any]]:
    table = model.__table__
    statement = select(*table.c).where(readable, table.c.id == any_(uuid_array("ids", ids)))
    return list((await session.execute(statement)).all())


async def rows_by_parent(
    session: Reader,
    parent_column: InstrumentedAttribute[Any],
    readable: ColumnElement[bool],
    parent_ids: Sequence[uuid.UUID],
    order_by: Sequence[InstrumentedAttribute[Any]],
) -> dict[uuid.UUID, list[Row[Any]]]:
    """Every readable child of each parent, in ``order_by`` order, in one statement."""
    statement = (
        select(*parent_column.class_.__table__.c)
        .where(readable, parent_column == any_(uuid_array("parent_ids", parent_ids)))
        .order_by(parent_column, *order_by)
    )
    grouped: dict[uuid.UUID, list[Row[Any]]] = defaultdict(list)
    for row in (await session.execute(statement)).all():
        grouped[getattr(row, parent_column.key)].append(row)
    return {parent_id: grouped.get(parent_id, []) for parent_id in parent_ids}
