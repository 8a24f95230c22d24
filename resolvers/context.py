"""The per-request GraphQL context: who is calling, and the request's DataLoaders."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

import strawberry
from starlette.websockets import WebSocket

from app.domain.audit import AuditTrail
from app.domain.errors import ApiError, Forbidden, Unauthenticated
from app.domain.viewer import effective_role

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from starlette.requests import Request
    from starlette.responses import Response

    from app.auth.tokens import VerifiedToken
    from app.data.audit_writer import AuditWriter
    from app.data.pagination import RowsShown
    from app.data.request_reads import DriverSource, ReaderSource
    from app.data.status_stream import StatusStream
    from app.data.storage import AttachmentStorage
    from app.domain.opaque_ids import OpaqueIds
    from app.domain.viewer import Viewer
    from app.settings import Settings
    from resolvers.loaders import Loaders


@dataclass(slots=True)
class RequestContext:
    request: Request | WebSocket
    response: Response | WebSocket | None
    request_id: str
    ids: OpaqueIds
    # Transactions (writes) take sessions of their own from here.
    sessionmaker: async_sessionmaker[AsyncSession]
    # Reads: the request's one connection (app/data/request_reads.py).
    reads: ReaderSource
    # The same connection's asyncpg connection, for statements run on the driver.
    drivers: DriverSource
    # Gives that connection back before the request waits for another (a write's transaction,
    # the audit writer's): holding one while waiting for a second, more requests than the pool
    # has connections would wait for each other until the pool's timeout.
    release_reads: Callable[[], Awaitable[None]]
    loaders: Loaders
    audit: AuditTrail
    # Where the operation's audit row goes once it ran (schema/audit.py).
    audit_writer: AuditWriter
    storage: AttachmentStorage
    settings: Settings
    status_stream: StatusStream
    viewer: Viewer | None
    # Why the token was refused (or that there was none); never the token itself.
    auth_failure: str | None
    # Why every field of this request refuses before reading anything (rate, database down).
    refusal: ApiError | None = None
    # The WebSocket `connection_init` payload; Strawberry fills it in.
    connection_params: dict[str, object] | None = None
    # A WebSocket's token, as verified at `connection_init` (its signing key is checked again
    # before deliveries).
    token: VerifiedToken | None = None
    _closing: asyncio.Task[None] | None = None
    # The fields selected under each connection of the operation, by response path without list
    # indices (schema/connections.py): worked out once, not once per parent in a list.
    node_selections: dict[tuple[object, ...], frozenset[str]] = field(default_factory=dict)
    # Which rows each such connection shows (schema/connections.py's shows_rows).
    shown_rows: dict[tuple[object, ...], RowsShown] = field(default_factory=dict)

    async def close_connection(self, code: int, reason: str) -> None:
        """Closes a WebSocket once the current message is out (no-op for HTTP)."""
        websocket = self.request
        if isinstance(websocket, WebSocket):

            async def close() -> None:
                await asyncio.sleep(0.1)  # let Strawberry send `complete` first
                with contextlib.suppress(RuntimeError):
                    await websocket.close(code=code, reason=reason)

            self._closing = asyncio.create_task(close())

    def for_operation(self) -> RequestContext:
        """The context one operation runs with. A WebSocket's operations run concurrently on
        one context, so each gets an audit trail, loaders and per-operation caches of its own
        (a row names only its own reads); an HTTP request runs one operation on its own."""
        if not isinstance(self.request, WebSocket):
            return self
        audit = AuditTrail(
            request_id=self.request_id,
            client_address=self.audit.client_address,
            viewer=self.viewer,
        )
        return dataclasses.replace(
            self,
            audit=audit,
            loaders=self.loaders.with_trail(audit),
            node_selections={},
            shown_rows={},
            _closing=None,
        )

    def signed_in(self) -> Viewer:
        if self.refusal is not None:
            raise self.refusal
        if self.viewer is None:
            raise Unauthenticated(f"authentication required: {self.auth_failure}")
        return self.viewer

    def reader(self) -> Viewer:
        """A caller who may read its tenant's data: signed in, with a tenant and a role."""
        viewer = self.signed_in()
        if effective_role(viewer) is None:
            raise Forbidden(
                "this token yields no tenant, no role, or a provider/patient role whose subject "
                "is linked to no provider or patient; it may only query `me`"
            )
        return viewer


Info: TypeAlias = strawberry.Info[RequestContext, None]
