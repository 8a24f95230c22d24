"""DataLoaders for one subscription event, whose statements the event's scope shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from resolvers.loaders import Loaders

if TYPE_CHECKING:
    from app.context import RequestContext
    from app.status_fanout import SharedStatements
    from app.viewer import Viewer

V = TypeVar("V")


class EventLoaders(Loaders):
    """Fresh loaders for one event. Each statement runs once for the subscribers of the scope
    delivering the same events (app/status_fanout.py); the rows become objects, and audit-trail
    entries, per subscriber."""

    def __init__(
        self, statements: SharedStatements, context: RequestContext, viewer: Viewer
    ) -> None:
        super().__init__(context.reads, viewer, context.ids, context.audit)
        self._statements = statements

    async def _run(self, query: Callable[..., Awaitable[V]], *args: Any) -> V:
        return await self._statements.run(query, args)
