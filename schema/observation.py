"""What the operations of the current HTTP request did, noted as they run for the request log
and metrics (app/server/observability.py reads the notes once the response is out).

The request's middleware opens an :class:`Observation` (``observing``); outside one every
function here does nothing, so WebSocket operations and tests without the middleware count
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from strawberry.extensions import SchemaExtension

if TYPE_CHECKING:
    import strawberry
    from strawberry.types import ExecutionContext


class Counters(Protocol):
    def count_query_execution(self, executor: str) -> None: ...

    def count_rate_limit_rejection(self, limit: str) -> None: ...


@dataclass(slots=True)
class Observation:
    counters: Counters
    operations: list[ExecutionContext] = field(default_factory=list)


_current: ContextVar[Observation | None] = ContextVar("medrec_observation", default=None)


@contextmanager
def observing(observation: Observation | None) -> Iterator[None]:
    """Notes made inside the block go to ``observation`` (None: nowhere)."""
    token = _current.set(observation)
    try:
        yield
    finally:
        _current.reset(token)


def count_query_execution(executor: str) -> None:
    """Counts how a query operation over HTTP was executed (planned, prepared, ...)."""
    observation = _current.get()
    if observation is not None:
        observation.counters.count_query_execution(executor)


def count_rate_limit_rejection(limit: str) -> None:
    """Counts a request refused by the ``"address"`` or ``"subject"`` rate limit."""
    observation = _current.get()
    if observation is not None:
        observation.counters.count_rate_limit_rejection(limit)


class OperationObserver(SchemaExtension):
    """Notes each operation of an HTTP request for the middleware, which reads it at the end."""

    def on_operation(self) -> Iterator[None]:
        note_operation(self.execution_context)
        yield


def note_operation(execution_context: ExecutionContext) -> None:
    """Tells the request log and metrics about an operation; its result is read at the end."""
    observation = _current.get()
    if observation is not None:
        observation.operations.append(execution_context)


def observe_operations(schema: strawberry.Schema) -> strawberry.Schema:
    """Adds :class:`OperationObserver` to a schema's extensions (once)."""
    if OperationObserver not in schema.extensions:
        schema.extensions = (*schema.extensions, OperationObserver)
    return schema
