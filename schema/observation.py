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
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from graphql import DocumentNode, OperationDefinitionNode
    from strawberry.types import ExecutionResult
    from strawberry.types.graphql import OperationType

    from resolvers.context import RequestContext


class Counters(Protocol):
    def count_query_execution(self, executor: str) -> None: ...

    def count_rate_limit_rejection(self, limit: str) -> None: ...


@dataclass(slots=True)
class OperationRun:
    """One operation as schema/pipeline.py runs it: filled in step by step."""

    query: str | None
    # The operationName the request gave (free text: never logged as it is).
    requested_name: str | None
    variables: dict[str, Any] | None
    context: RequestContext
    document: DocumentNode | None = None
    type: OperationType | None = None
    # The operation chosen; None when the document names none the request can run.
    operation: OperationDefinitionNode | None = None
    cost: int = 0
    result: ExecutionResult | None = None

    @property
    def name(self) -> str | None:
        """The chosen operation's name as its document defines it."""
        operation = self.operation
        return None if operation is None or operation.name is None else operation.name.value


@dataclass(slots=True)
class Observation:
    counters: Counters
    operations: list[OperationRun] = field(default_factory=list)


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


def note_operation(run: OperationRun) -> None:
    """Tells the request log and metrics about an operation; its result is read at the end."""
    observation = _current.get()
    if observation is not None:
        observation.operations.append(run)
