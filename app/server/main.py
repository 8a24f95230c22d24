"""The Starlette application: ``/graphql``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app.data.audit_partitions import StrandedDefaultRows, maintain_partitions
from app.server.graphiql import STATIC_PATH, GraphiQLStaticFiles
from app.server.graphql_view import CONSISTENCY_HEADER, GraphQLView
from app.server.http_guards import LOOPBACK_ORIGIN_PATTERN, PREFLIGHT_HEADERS
from app.server.observability import Observability, ObservabilityMiddleware
from app.server.services import Services
from app.server.shutdown import closing_sockets_on_exit_signal
from app.settings import Settings
from schema.schema import build_schema

log = logging.getLogger("medrec.audit")
READINESS_TIMEOUT_SECONDS = 4.0

# What a page on another origin may send: a header left out fails the preflight, and then the
# browser never sends the request (Apollo's and urql's client awareness headers, the read-your-
# writes token).
CORS_ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    CONSISTENCY_HEADER,
    "apollographql-client-name",
    "apollographql-client-version",
    *PREFLIGHT_HEADERS,
)
# What its scripts may read: WWW-Authenticate tells a 401's refused token from a missing one.
CORS_EXPOSED_HEADERS = ("X-Request-ID", "Retry-After", "WWW-Authenticate")


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    try:
        # Behind a pooler a database that is down makes a statement wait, not fail: a health
        # check that waits is answered "not ready" before the load balancer gives up on it.
        async with (
            asyncio.timeout(READINESS_TIMEOUT_SECONDS),
            services.engine.connect() as connection,
        ):
            current = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
    except Exception:  # any failure to reach the database means "not ready"
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if current != services.migration_head:
        return JSONResponse(
            {"status": "unavailable", "database": "migrations not at head"}, status_code=503
        )
    return JSONResponse({"status": "ok"})


def tune_garbage_collection() -> None:
    """Every collection of the oldest generation walks all objects made at start-up (the schema,
    SQLAlchemy's caches), and a large response triggers several. Frozen, they are skipped: a
    fifth of the mobile query's CPU time. Raising the thresholds as well saved a little more but
    let the heap grow for minutes under load, so they stay at Python's defaults.
    """
    gc.collect()
    gc.freeze()


async def maintain_audit_partitions(services: Services) -> None:
    """Makes the audit partitions due ahead and detaches the expired ones. A failure (the database
    unreachable, a lock not granted in time) is logged and the server starts all the same: audit
    rows of months without a partition go to the DEFAULT partition meanwhile."""
    try:
        changes = await maintain_partitions(
            services.engine, retention_months=services.settings.audit_retention_months
        )
    except StrandedDefaultRows as error:  # names tables and months only
        log.warning("audit partitions not maintained at start: %s", error)
        return
    except Exception as error:  # start-up must not depend on it; the text may quote SQL
        log.warning("audit partitions not maintained at start: %s", type(error).__name__)
        return
    for name in changes.created:
        log.info("audit partition %s created", name)
    for name, archived in changes.detached:
        log.info("audit partition %s detached as %s", name, archived)


def create_app(
    settings: Settings | None = None, *, allow_loopback_origins: bool = False
) -> Starlette:
    """The app; ``allow_loopback_origins`` (`medrec dev` only, never a setting, so that a
    production server cannot have it) lets pages on http://localhost:<port> and
    http://127.0.0.1:<port> call it and open subscriptions, besides the configured origins."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Services.running(settings) as services:
            app.state.services = services
            await maintain_audit_partitions(services)
            graphql.persisted = services.persisted
            tune_garbage_collection()
            with closing_sockets_on_exit_signal(services.sockets):
                yield

    observability = Observability()
    graphql = GraphQLView(
        build_schema(introspection=settings.introspection),
        # The legacy `graphql-ws` protocol is not offered: only this one is authenticated.
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        allowed_origins=settings.ws_allowed_origins,
        allow_loopback_origins=allow_loopback_origins,
    )
    middleware = [Middleware(ObservabilityMiddleware, observability=observability)]
    if settings.cors_origins or allow_loopback_origins:
        # Browsers on other origins (a clinic's web app) only where configured: without any, the
        # middleware would only cost every response a few header lookups.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_origin_regex=LOOPBACK_ORIGIN_PATTERN if allow_loopback_origins else None,
                allow_methods=["GET", "POST"],
                allow_headers=CORS_ALLOWED_HEADERS,
                expose_headers=CORS_EXPOSED_HEADERS,
                max_age=600,
            )
        )
    return Starlette(
        routes=[
            # The API first: the router tries each route in turn on every request.
            # Every method: the view answers those it does not serve with a coded 405 error.
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", observability.metrics),
            Mount(STATIC_PATH, GraphiQLStaticFiles(), name="graphiql-static"),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
