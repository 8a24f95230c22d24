"""What every write shares: locking a row for update, version checks and bumps, unique-violation
mapping."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.domain.errors import Conflict, NotFound

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from sqlalchemy import ColumnElement, Insert, Row, Select, Table, Update
    from sqlalchemy.ext.asyncio import AsyncConnection


async def locked_row(
    connection: AsyncConnection,
    statement: Select[*tuple[Any, ...]],
    parameters: Mapping[str, Any],
    field: str,
    what: str,
) -> Row[Any]:
    """``statement`` selects one row FOR UPDATE under the caller's read predicate."""
    row: Row[Any] | None = (await connection.execute(statement, parameters)).one_or_none()
    if row is None:
        raise NotFound(f"{field}: {what} not found")
    return row


def versioned_update(table: Table, key: str, stamped: str | None = None) -> Update:
    """Updates the row whose id is the parameter ``key``: its version goes up by one,
    ``updated_at`` (and the column ``stamped``, if named) becomes now(), and the row comes back.
    The columns a change sets are its parameters' other keys (SQLAlchemy compiles one statement
    per set of keys), so the statement is built once."""
    now = {"updated_at": func.now()} | ({stamped: func.now()} if stamped else {})
    return (
        update(table)
        .where(table.c.id == bindparam(key))
        .values(version=table.c.version + 1, **now)
        .returning(*table.c)
    )


def insert_under(table: Table, columns: tuple[str, ...], room: ColumnElement[bool]) -> Insert:
    """Inserts one row of ``columns`` (its parameters) while ``room`` holds, and returns it: no
    row comes back when it does not, in the same round trip. Under the parent row's lock, the
    count ``room`` compares cannot change before the commit."""
    values = [bindparam(name, type_=table.c[name].type) for name in columns]
    return insert(table).from_select(columns, select(*values).where(room)).returning(*table.c)


def check_version(row: Row[Any], expected: int, what: str) -> None:
    if row.version != expected:
        raise Conflict(
            f"input.expectedVersion: the {what} has changed (now at version {row.version}); "
            "read it again and retry"
        )


# The one rule for every write that sets a cognito_sub (models.SubjectLink): the message names
# neither the tenant nor the kind of row the subject is linked to.
SUBJECT_ALREADY_LINKED = {"pk_subject_links": "input.cognitoSub: this subject is already linked"}


@contextmanager
def unique_violations(messages: Mapping[str, str]) -> Iterator[None]:
    """Turns a unique-constraint violation named in ``messages`` into a CONFLICT."""
    try:
        yield
    except IntegrityError as error:
        constraint = getattr(getattr(error.orig, "__cause__", None), "constraint_name", None)
        if isinstance(constraint, str) and constraint in messages:
            raise Conflict(messages[constraint]) from None
        raise
