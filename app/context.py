"""The per-request GraphQL context: who is calling, and the request's DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import strawberry

from app.access import effective_role
from app.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

    from app.audit import AuditTrail
    from app.opaque_ids import OpaqueIds
    from app.settings import Settings
    from app.storage import AttachmentStorage
    from app.viewer import Viewer
    from resolvers.loaders import Loaders


@dataclass(slots=True)
class RequestContext:
    request: Request | WebSocket
    response: Response | WebSocket | None
    request_id: str
    ids: OpaqueIds
    sessionmaker: async_sessionmaker[AsyncSession]
    loaders: Loaders
    audit: AuditTrail
    storage: AttachmentStorage
    settings: Settings
    viewer: Viewer | None
    # Why the token was refused (or that there was none); never the token itself.
    auth_failure: str | None

    def signed_in(self) -> Viewer:
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
