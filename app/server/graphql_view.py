"""The GraphQL endpoint: Strawberry's ASGI view with our per-request context."""

from __future__ import annotations

import functools
import logging
import re
import secrets
from typing import TYPE_CHECKING

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)

from app.auth.callers import resolve_viewer
from app.auth.tokens import TokenError, VerifiedToken, bearer_token
from app.data.repositories.break_glass_grants import holds_active_grant
from app.data.request_reads import nothing_held, pooled_driver
from app.domain.audit import AuditTrail
from app.domain.errors import (
    DATABASE_OUTAGES,
    DATABASE_UNAVAILABLE,
    BadUserInput,
    ErrorCode,
    RateLimited,
    ServiceUnavailable,
)
from app.domain.viewer import Viewer, effective_role
from app.server.graphiql import graphiql_page
from app.server.http_guards import (
    BodyTooLarge,
    csrf_refusal,
    is_loopback_origin,
    limited,
    limited_websocket,
)
from app.server.persisted_queries import PersistedQueries, PersistedQueryError
from models.enums import Role
from resolvers.context import RequestContext
from resolvers.loaders import Loaders
from schema.observation import count_rate_limit_rejection

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from cross_web import AsyncHTTPRequestAdapter
    from starlette.types import Receive, Scope, Send
    from starlette.websockets import WebSocket
    from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
    from strawberry.http.base import BaseRequestProtocol
    from strawberry.schema import BaseSchema
    from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
    from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

    from app.data.request_reads import DriverSource, ReaderSource, RequestReads
    from app.domain.opaque_ids import OpaqueIds
    from app.server.services import Services


log = logging.getLogger("medrec.graphql")


def _prefers_graphql_response_json(accept: str) -> bool:
    """Whether the Accept header asks for application/graphql-response+json at least as much as
    for application/json (the spec's preference on a tie); wildcards mean application/json."""
    quality: dict[str, float] = {}
    for media_range in accept.lower().split(","):
        media_type, *parameters = media_range.split(";")
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        quality[media_type.strip()] = weight
    wanted = quality.get(GRAPHQL_RESPONSE_JSON, 0.0)
    return wanted > 0 and wanted >= quality.get("application/json", 0.0)


def _bearer_challenge(authorization: str | None) -> str:
    """RFC 6750 section 3.1: a request with no bearer token at all gets a challenge without an
    error code; one whose token was refused, `invalid_token`."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return 'Bearer error="invalid_token"'
    return "Bearer"


def _as_graphql_response_json(response: Response, authorization: str | None) -> None:
    """GraphQL over HTTP with this media type: a request error (nothing executed) has no
    ``data`` and is a 400; an operation refused only for want of a caller is a 401."""
    response.media_type = GRAPHQL_RESPONSE_JSON
    response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
    body = orjson.loads(bytes(response.body))
    if not isinstance(body, dict) or body.get("data") is not None:
        return
    errors = body.get("errors") or [{}]
    # Strawberry writes `"data": null` for request errors too; they are the errors without a path.
    if all("path" not in error for error in errors):
        if "data" in body:
            del body["data"]
            response.body = orjson.dumps(body)
            response.headers["content-length"] = str(len(response.body))
        if response.status_code == 200:
            response.status_code = 400
    elif response.status_code == 200 and all(
        (error.get("extensions") or {}).get("code") == ErrorCode.UNAUTHENTICATED for error in errors
    ):
        # A missing or refused token is what stopped it: clients refresh their token on a 401.
        response.status_code = 401
        response.headers["WWW-Authenticate"] = _bearer_challenge(authorization)


def _error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]},
        status_code=status,
    )


def _refusal(request: Request, limit: int) -> Response | None:
    """A request refused before any GraphQL work, or None."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return _error_response(413, f"the request body exceeds {limit} bytes")
    reason = csrf_refusal(request)
    return None if reason is None else _error_response(400, reason)


async def _grant_holders_read_the_primary(reads: RequestReads, viewer: Viewer) -> None:
    """A revoked break-glass grant stops granting at once, but a replica may not have replayed
    the revocation yet: a caller whose grant a replica sees as active reads the primary. (One
    the replica does not see yet grants nothing there, and its holder has the token of the
    mutation that made it.)"""
    if not reads.on_replica or effective_role(viewer) not in (Role.ADMIN, Role.PROVIDER):
        return
    async with reads.driver() as driver:
        held = await holds_active_grant(driver, viewer)
    if held:
        await reads.close()


CONSISTENCY_HEADER = "X-Medrec-Consistency"


def consistency_position(token: object, ids: OpaqueIds) -> int | None:
    """The position a request's reads must have seen: from a mutation's consistency token
    (``extensions.consistency``) sent back in a header or a WebSocket's `connection_init`."""
    if token is None:
        return None
    if not isinstance(token, str):
        raise BadUserInput("malformed consistency token")
    return ids.decode_consistency(token.strip())


def _address_limited(request: Request, services: Services) -> Response | None:
    address = request.client.host if request.client else "unknown"
    wait = services.address_limits.take(address)
    if wait is None:
        return None
    count_rate_limit_rejection("address")
    refusal = RateLimited(wait)
    return JSONResponse(
        {"errors": [{"message": refusal.message, "extensions": {"code": refusal.code.value}}]},
        status_code=429,
        headers={"Retry-After": str(refusal.retry_after)},
    )


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_of(request: Request | WebSocket) -> str:
    """A caller's X-Request-ID is kept when it is a plain token, so logs correlate across hops."""
    offered = request.headers.get("x-request-id", "")
    return offered if _REQUEST_ID.fullmatch(offered) else secrets.token_hex(16)


GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


class _SubResponse(Response):
    """Where the context puts its headers (X-Request-ID, Retry-After) and a status (429) for
    create_response; Starlette's Response() would render a body and headers never sent."""

    def __init__(self) -> None:
        self.status_code = None  # type: ignore[assignment]  # as Strawberry's: none set yet
        self.background = None
        self.raw_headers = []


class CodedErrorsTransportWS(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """Strawberry's graphql-transport-ws handler, whose own `error` messages (made outside the
    schema's extensions, which code every other error) carry a contract code too."""

    async def send_message(self, message: Message) -> None:
        if message["type"] == "error":
            code = self._code_of_refusal(message["id"])
            message["payload"] = [
                error
                if "code" in (error.get("extensions") or {})
                else {**error, "extensions": {**(error.get("extensions") or {}), "code": code}}
                for error in message["payload"]
            ]
        await super().send_message(message)

    async def run_operation(self, operation: Operation[RequestContext, None]) -> None:
        """Each operation on the socket passes what an HTTP request passes before it runs: the
        caller's rate limit, then the allow-list of registered documents."""
        refusal = await self._refusal(operation.query)
        if refusal is not None:
            await operation.send_initial_errors([refusal])
            return
        await super().run_operation(operation)

    async def _refusal(self, query: str) -> GraphQLError | None:
        context = self.context
        services: Services = context.request.app.state.services
        viewer = context.viewer
        wait = None if viewer is None else services.subject_limits.take(viewer.subject)
        if wait is not None:
            count_rate_limit_rejection("subject")
            limited = RateLimited(wait)
            return GraphQLError(
                limited.message, extensions={"code": limited.code.value, **limited.extensions}
            )
        try:
            await services.persisted.resolve(query, None)
        except PersistedQueryError as error:
            return GraphQLError(error.message, extensions={"code": error.code})
        return None

    def _code_of_refusal(self, operation_id: str) -> str:
        """An operation refused before it ran, while the connection runs as many as it may, hit
        that limit; anything else Strawberry refuses (incremental delivery) is a bad request."""
        limit = self.max_subscriptions_per_connection
        at_limit = limit is not None and len(self.operations) >= limit
        if at_limit and operation_id not in self.operations:
            return ErrorCode.RATE_LIMITED.value
        return ErrorCode.BAD_USER_INPUT.value


class GraphQLView(GraphQL[RequestContext, None]):
    graphql_transport_ws_handler_class = CodedErrorsTransportWS
    # Persisted documents; the app's lifespan sets this once its services are up.
    persisted: PersistedQueries | None = None

    def __init__(
        self,
        schema: BaseSchema,
        *,
        subscription_protocols: Sequence[str],
        allowed_origins: Sequence[str] = (),
        allow_loopback_origins: bool = False,
    ) -> None:
        super().__init__(
            schema, subscription_protocols=subscription_protocols, allowed_origins=allowed_origins
        )
        self.allow_loopback_origins = allow_loopback_origins

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        """The configured origins; in `medrec dev` also a local frontend's, by the same rule as
        its CORS (so a page that may POST may subscribe too)."""
        return super().is_websocket_origin_allowed(request, origin) or (
            self.allow_loopback_origins and is_loopback_origin(origin)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].state.services
        if scope["type"] == "websocket":
            receive, send = limited_websocket(receive, send, services.settings.max_request_bytes)
            with services.sockets.tracking(send):
                await super().__call__(scope, receive, send)
            return
        limit = services.settings.max_request_bytes
        request = Request(scope, limited(receive, limit))
        response = _refusal(request, limit) or _address_limited(request, services)
        after: int | None = None
        if response is None:
            try:
                after = consistency_position(request.headers.get(CONSISTENCY_HEADER), services.ids)
            except BadUserInput as error:
                response = _error_response(400, f"{CONSISTENCY_HEADER}: {error.message}")
        if response is None:
            reads = request.state.reads = services.request_reads(after)
            try:
                response = await self.run(request)
            except HTTPException as error:
                # Strawberry's refusals of the request itself (not JSON, no query, an unknown
                # operation name, a mutation over GET): the client's mistake, with its status.
                response = _error_response(error.status_code, error.reason)
            except BodyTooLarge:
                response = _error_response(413, f"the request body exceeds {limit} bytes")
            except PersistedQueryError as error:
                response = JSONResponse(
                    {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
                )
            finally:
                # The response is complete in memory: the connection goes back before sending.
                await reads.close()
        if response.media_type == "application/json" and _prefers_graphql_response_json(
            request.headers.get("accept", "")
        ):
            _as_graphql_response_json(response, request.headers.get("authorization"))
        await response(scope, receive, send)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        return _SubResponse()

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        # As Strawberry's, but the body is orjson's bytes as they are: encode_json's text (for
        # WebSocket frames) would be decoded and encoded again, a copy of a response of 300 KB.
        response = Response(orjson.dumps(response_data), media_type="application/json")
        response.raw_headers.extend(sub_response.raw_headers)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    def decode_json(self, data: str | bytes) -> object:
        # orjson's errors are json.JSONDecodeError too, which Strawberry answers with a 400.
        return orjson.loads(data)

    def encode_json(self, data: object) -> str:
        # Responses of a few hundred KB are common (a patient's nested records): orjson. A str,
        # not bytes: WebSocket messages must go out as text frames, which browsers expect.
        return orjson.dumps(data).decode()

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from our own static files, under a strict CSP (app/graphiql)."""
        return graphiql_page()

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # A GET carrying only a persisted query's hash is an operation, not a page view.
        return super().should_render_graphql_ide(request) and (
            request.query_params.get("extensions") is None
        )

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        if isinstance(data, list):
            raise HTTPException(400, "batched operations are not accepted")
        assert self.persisted is not None, "set by the app's lifespan"
        data.query = await self.persisted.resolve(data.query, data.extensions)
        return data

    async def on_ws_connect(self, context: RequestContext) -> None:
        """The token of a WebSocket arrives in `connection_init`; without a good one, 4403."""
        params = context.connection_params or {}
        header = params.get("Authorization", params.get("authorization"))
        services: Services = context.request.app.state.services
        try:
            token = await services.verifier.verify(
                bearer_token(header if isinstance(header, str) else None)
            )
        except TokenError as error:
            raise ConnectionRejectionError({"reason": error.reason}) from None
        # Subscriptions read from the primary, which has every committed write: a token needs
        # no more than to be well-formed.
        try:
            consistency_position(params.get("consistency"), services.ids)
        except BadUserInput as error:
            raise ConnectionRejectionError(
                {"reason": error.message, "code": ErrorCode.BAD_USER_INPUT.value}
            ) from None
        # Not kept for the connection's life: the viewer carries the token's expiry, and an idle
        # subscription is smaller without a copy of its token.
        context.connection_params = None
        context.token = token
        viewer = await resolve_viewer(context.reads, token)
        context.viewer = viewer
        context.auth_failure = None
        context.audit.viewer = viewer
        context.loaders = Loaders(context.reads, viewer, services.ids, context.audit)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        services: Services = request.app.state.services
        # HTTP requests read through one connection; a WebSocket takes pooled ones as needed.
        reads: ReaderSource
        drivers: DriverSource
        release_reads: Callable[[], Awaitable[None]]
        if isinstance(request, Request):
            held: RequestReads = request.state.reads
            reads, drivers, release_reads = held.reader, held.driver, held.close
        else:
            reads = services.read_engine.connect
            drivers = functools.partial(pooled_driver, services.read_engine)
            release_reads = nothing_held
        request_id = request_id_of(request)
        viewer: Viewer | None = None
        failure: str | None = None
        rate_limited: RateLimited | None = None
        unavailable: ServiceUnavailable | None = None
        token: VerifiedToken | None = None
        try:
            token = await services.verifier.verify(
                bearer_token(request.headers.get("authorization"))
            )
        except TokenError as error:
            failure = error.reason
        else:
            wait = services.subject_limits.take(token.subject)
            if wait is not None:
                # Refused before the database is touched; the resolvers raise it.
                count_rate_limit_rejection("subject")
                rate_limited = RateLimited(wait)
                if isinstance(response, Response):
                    response.status_code = 429
                    response.headers["Retry-After"] = str(rate_limited.retry_after)
            else:
                try:
                    viewer = await resolve_viewer(reads, token)
                    if isinstance(request, Request):
                        await _grant_holders_read_the_primary(request.state.reads, viewer)
                except DATABASE_OUTAGES:
                    log.warning("database unavailable while resolving the caller")
                    unavailable = ServiceUnavailable(DATABASE_UNAVAILABLE)
        if isinstance(response, Response):
            response.headers["X-Request-ID"] = request_id
        audit = AuditTrail(
            request_id=request_id,
            client_address=request.client.host if request.client else None,
            viewer=viewer,
        )
        return RequestContext(
            request=request,
            response=response,
            request_id=request_id,
            ids=services.ids,
            sessionmaker=services.sessionmaker,
            reads=reads,
            drivers=drivers,
            release_reads=release_reads,
            loaders=Loaders(reads, viewer, services.ids, audit),
            audit=audit,
            audit_writer=services.audit_writer,
            storage=services.storage,
            settings=services.settings,
            status_stream=services.status_stream,
            viewer=viewer,
            auth_failure=failure,
            refusal=rate_limited or unavailable,
            token=token,
        )
