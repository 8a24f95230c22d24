"""The GraphQL endpoint: Strawberry's ASGI view with our per-request context."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from starlette.responses import Response
from strawberry.asgi import GraphQL

from app.context import RequestContext
from app.tokens import TokenError, bearer_token
from app.viewer import Viewer, resolve_viewer
from resolvers.loaders import Loaders

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.websockets import WebSocket

    from app.services import Services

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_of(request: Request | WebSocket) -> str:
    """A caller's X-Request-ID is kept when it is a plain token, so logs correlate across hops."""
    offered = request.headers.get("x-request-id", "")
    return offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


class GraphQLView(GraphQL[RequestContext, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        services: Services = request.app.state.services
        request_id = request_id_of(request)
        viewer: Viewer | None = None
        failure: str | None = None
        try:
            token = await services.verifier.verify(
                bearer_token(request.headers.get("authorization"))
            )
        except TokenError as error:
            failure = error.reason
        else:
            async with services.sessionmaker() as session:
                viewer = await resolve_viewer(session, token)
        if isinstance(response, Response):
            response.headers["X-Request-ID"] = request_id
        return RequestContext(
            request=request,
            response=response,
            request_id=request_id,
            ids=services.ids,
            sessionmaker=services.sessionmaker,
            loaders=Loaders(services.sessionmaker, viewer, services.ids),
            viewer=viewer,
            auth_failure=failure,
        )
