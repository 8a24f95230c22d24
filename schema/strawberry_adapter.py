"""The private parts of Strawberry medrec relies on, each behind a function saying why."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strawberry.types import ExecutionContext


def provided_operation_name(execution_context: ExecutionContext) -> str | None:
    """The operationName the request gave. ``ExecutionContext.operation_name`` falls back to the
    first operation's name, which hides a request that names none in a document of several:
    the spec's error, not the first operation."""
    name: str | None = execution_context._provided_operation_name
    return name
