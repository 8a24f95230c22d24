"""DataLoaders of a subscription, emptied for each event, whose statements the event's scope
shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from resolvers.loaders import Loaders

if TYPE_CHECKING:
    from app.data.status_fanout import SharedStatements
    from app.domain.viewer import Viewer
    from resolvers.context import RequestContext

V = TypeVar("V")


class EventLoaders(Loaders):
    """One per subscription, emptied before each event, so nested fields read the rows as they
    are now. Each statement runs once for the subscribers of the scope delivering the same events
    (app/data/status_fanout.py); the rows become objects, and audit-trail entries, per subscriber.

    Made once rather than per event: hundreds of deliveries per change each building eight
    DataLoaders made the garbage collector a large part of the fan-out's time.
    """

    def __init__(self, context: RequestContext, viewer: Viewer) -> None:
        super().__init__(context.reads, viewer, context.ids, context.audit)
        self._statements: SharedStatements | None = None

    def next_event(self, statements: SharedStatements) -> EventLoaders:
        self._statements = statements
        for loader in (*self._by_ids.values(), *self._of_records.values()):
            loader.clear_all()
        # Loaders made per set of connection arguments (Loaders._grouped) start afresh too.
        self._keyed.clear()
        return self

    async def _run(self, query: Callable[..., Awaitable[V]], *args: Any) -> V:
        assert self._statements is not None, "next_event comes first"
        return await self._statements.run(query, args)
