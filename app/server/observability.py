"""Prometheus metrics at ``/metrics`` and one structured log line per request.

Each app made by ``create_app`` has an :class:`Observability` with a registry of its own (never
prometheus-client's global one), so tests and several apps in one process don't collide. Metrics
are per process: with ``medrec serve --workers N`` a scrape reaches one worker and sees only its
numbers, so run one worker per container (scale with containers) when scraping ``/metrics``.
``/metrics`` says how the API is used (operation names, rates); expose it only to the scraper.

:class:`ObservabilityMiddleware` times every HTTP request (and WebSocket connection) and, when it
ends, writes one line to the ``medrec.request`` logger and counts the GraphQL operations it ran.
The pipeline notes each operation it runs (schema/observation.py); what it did (name, type,
errors, ``extensions.cost``, the caller) is read once the response is out.

Labels and log fields carry operation names only, and only names of operations the document
really defines (others are ``anonymous``); names past :data:`OPERATION_NAME_LIMIT` characters
are cut. A name gets a label of its own only from a signed-in caller and while fewer than
:data:`OPERATION_LABEL_LIMIT` have one; otherwise it counts as ``other``. Nothing logged or
labelled comes from query text, variables, results or tokens.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.datastructures import Headers
from starlette.responses import Response

from app.data.pool_waits import WaitCountingPool
from app.domain.errors import ErrorCode
from schema.observation import Observation, observing

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from app.server.services import Services
    from schema.observation import OperationRun

request_log = logging.getLogger("medrec.request")

GRAPHQL_PATH = "/graphql"
ANONYMOUS = "anonymous"
OTHER = "other"
BATCH = "batch"
OPERATION_NAME_LIMIT = 64
OPERATION_LABEL_LIMIT = 200

OK, DENIED, ERROR = "ok", "denied", "error"
_DENIED_CODES = frozenset(
    {ErrorCode.UNAUTHENTICATED.value, ErrorCode.FORBIDDEN.value, ErrorCode.RATE_LIMITED.value}
)
_SEVERITY = {OK: 0, DENIED: 1, ERROR: 2}
RATE_LIMITS = frozenset({"address", "subject"})
QUERY_EXECUTORS = frozenset({"planned", "prepared", "fallback", "unplanned"})
_Metric = TypeVar("_Metric", Counter, Histogram)

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COST_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)


# --- metrics ---------------------------------------------------------------------------------


class _ServicesCollector(Collector):
    """Values read from the running services at scrape time."""

    def __init__(self) -> None:
        self.services: Services | None = None

    def describe(self) -> Iterable[Metric]:
        return _services_families()

    def collect(self) -> Iterable[Metric]:
        services = self.services
        if services is None:
            return []
        in_use, size, waits, waited, timeouts, subscriptions, jwks = _services_families()
        pools = [("primary", services.engine)]
        if services.replicas is not None:
            pools += [(replica.name, replica.engine) for replica in services.replicas.members]
        for name, engine in pools:
            pool = engine.sync_engine.pool
            if isinstance(pool, WaitCountingPool):
                in_use.add_metric([name], pool.checkedout())
                size.add_metric([name], pool.size())
                waits.add_metric([name], pool.waits)
                waited.add_metric([name], pool.waited_seconds)
                timeouts.add_metric([name], pool.timeouts)
        subscriptions.add_metric([], services.status_stream.subscriber_count)
        jwks.add_metric([], services.jwks.fetch_count)
        families = (in_use, size, waits, waited, timeouts, subscriptions, jwks)
        return [family for family in families if family.samples]


def _services_families() -> tuple[
    GaugeMetricFamily,
    GaugeMetricFamily,
    CounterMetricFamily,
    CounterMetricFamily,
    CounterMetricFamily,
    GaugeMetricFamily,
    CounterMetricFamily,
]:
    pool = ["pool"]
    return (
        GaugeMetricFamily(
            "medrec_db_pool_connections_in_use",
            "Database connections checked out of this process's pool (primary, replica N).",
            labels=pool,
        ),
        GaugeMetricFamily(
            "medrec_db_pool_size", "Connections this process's pool keeps open.", labels=pool
        ),
        CounterMetricFamily(
            "medrec_db_pool_waits",
            "Checkouts that found every connection of the pool in use and waited for one.",
            labels=pool,
        ),
        CounterMetricFamily(
            "medrec_db_pool_wait_seconds",
            "Seconds those checkouts waited (a share of request time: raise the pool, or add "
            "instances, when it grows).",
            labels=pool,
        ),
        CounterMetricFamily(
            "medrec_db_pool_timeouts",
            "Checkouts that gave up after MEDREC_DB_POOL_TIMEOUT_SECONDS; their requests failed.",
            labels=pool,
        ),
        GaugeMetricFamily(
            "medrec_active_subscriptions", "Record-status subscriptions open on this process."
        ),
        CounterMetricFamily(
            "medrec_jwks_refreshes",
            "Fetches of the identity provider's signing keys (JWKS), failed ones included.",
        ),
    )


class Observability:
    """The metrics of one app, with the ``/metrics`` endpoint."""

    def __init__(self, *, operation_label_limit: int = OPERATION_LABEL_LIMIT) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "medrec_graphql_requests",
            "GraphQL operations over HTTP by operation name and outcome (ok, denied, error); "
            "requests refused before any operation ran count as 'anonymous'.",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "medrec_graphql_request_duration_seconds",
            "Time from receiving a GraphQL HTTP request to the end of its response.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cost = Histogram(
            "medrec_graphql_query_cost",
            "Estimated cost of GraphQL operations that reported one in extensions.cost.",
            ["operation"],
            buckets=COST_BUCKETS,
            registry=self.registry,
        )
        self.rate_limit_rejections = Counter(
            "medrec_rate_limit_rejections",
            "Requests refused by a rate limit, by limit (address or subject).",
            ["limit"],
            registry=self.registry,
        )
        self.query_executions = Counter(
            "medrec_graphql_query_executions",
            "Query operations by executor: 'planned' (the breadth-first plan), 'prepared' (a "
            "recorded one-statement query, run without Strawberry's operation pipeline), "
            "'fallback' (the plan gave up at run time and graphql-core ran the query again), "
            "'unplanned' (graphql-core only: the plan does not cover the query).",
            ["executor"],
            registry=self.registry,
        )
        self._services = _ServicesCollector()
        self.registry.register(self._services)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._label_limit = operation_label_limit
        self._labels: set[str] = set()
        # prometheus_client's labels() checks the values and takes a lock on every call; the
        # label values are bounded (operation labels, outcomes), so each child is looked up once.
        self.requests_of = _Children(self.requests)
        self.latency_of = _Children(self.latency)
        self.cost_of = _Children(self.cost)
        self._executions_of = _Children(self.query_executions)

    def exposition(self, services: Services | None) -> bytes:
        """The text format, with the services' gauges read now (no await in between)."""
        self._services.services = services
        try:
            return generate_latest(self.registry)
        finally:
            self._services.services = None

    async def metrics(self, request: Request) -> Response:
        services: Services | None = getattr(request.app.state, "services", None)
        return Response(self.exposition(services), media_type=CONTENT_TYPE_LATEST)

    def operation_label(self, name: str | None, *, authenticated: bool) -> str:
        if name is None:
            return ANONYMOUS
        if name in self._labels:
            return name
        if authenticated and len(self._labels) < self._label_limit:
            self._labels.add(name)
            return name
        return OTHER

    def count_rate_limit_rejection(self, limit: str) -> None:
        self.rate_limit_rejections.labels(limit if limit in RATE_LIMITS else OTHER).inc()

    def count_query_execution(self, executor: str) -> None:
        self._executions_of(executor if executor in QUERY_EXECUTORS else OTHER).inc()


class _Children(Generic[_Metric]):
    """A labelled metric's children by their label values."""

    def __init__(self, metric: _Metric) -> None:
        self._metric: _Metric = metric
        self._children: dict[tuple[str, ...], _Metric] = {}

    def __call__(self, *values: str) -> _Metric:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


@dataclass(frozen=True, slots=True)
class _Operation:
    name: str | None
    type: str | None
    outcome: str | None
    cost: float | None
    subject: str | None
    request_id: str | None


def _outcome_of_errors(errors: Iterable[Any]) -> str:
    codes = {(getattr(error, "extensions", None) or {}).get("code") for error in errors}
    if not codes:
        return OK
    return DENIED if codes & _DENIED_CODES else ERROR


def _cost_of(extensions: Mapping[str, Any] | None) -> float | None:
    """``extensions.cost``: a number, or an object with a numeric ``requested`` or ``total``."""
    cost = (extensions or {}).get("cost")
    if isinstance(cost, Mapping):
        numbers = (_number(cost.get(key)) for key in ("requested", "total"))
        return next((number for number in numbers if number is not None), None)
    return _number(cost)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _describe(run: OperationRun) -> _Operation:
    result = run.result
    errors = getattr(result, "errors", None) or []
    extensions = getattr(result, "extensions", None)
    viewer = run.context.viewer
    name = run.name
    return _Operation(
        # Defined by the document; the limit keeps a log line short.
        name=name[:OPERATION_NAME_LIMIT] if name is not None and _NAME.fullmatch(name) else None,
        type=None if run.type is None else run.type.value,
        outcome=None if result is None else _outcome_of_errors(errors),
        cost=_cost_of(extensions if isinstance(extensions, Mapping) else None),
        subject=None if viewer is None else viewer.subject,
        request_id=run.context.request_id,
    )


def _outcome_of_status(status: int) -> str:
    if status < 400:
        return OK
    return DENIED if status in (401, 403, 429) else ERROR


# --- the middleware --------------------------------------------------------------------------


class ObservabilityMiddleware:
    """Times each request; at its end, one ``medrec.request`` line and the request metrics.

    GraphQL requests and WebSocket connections log at INFO (a connection when it closes, with
    its close code as the status); other paths (probes, ``/metrics``, static files) at DEBUG.
    Only GraphQL HTTP requests are counted in the request metrics.
    """

    def __init__(
        self, app: ASGIApp, observability: Observability, graphql_path: str = GRAPHQL_PATH
    ) -> None:
        self.app = app
        self.observability = observability
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observation = Observation(self.observability)
        response_start: dict[str, Any] = {}

        async def observed_send(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.close"):
                response_start.update(message)
            await send(message)

        try:
            with observing(observation if scope["type"] == "http" else None):
                await self.app(scope, receive, observed_send)
        finally:
            try:
                self._finish(scope, observation, response_start, time.perf_counter() - started)
            except Exception:  # observing must never break a response
                request_log.exception("could not record the request")

    def _finish(
        self,
        scope: Scope,
        observation: Observation,
        response_start: Mapping[str, Any],
        duration: float,
    ) -> None:
        websocket = scope["type"] == "websocket"
        if websocket:
            status: int | None = response_start.get("code")
        else:
            # No response started: the exception went up to Starlette, which answers 500.
            status = response_start.get("status", 500)
        operations = [_describe(context) for context in observation.operations]
        outcomes = [op.outcome for op in operations if op.outcome is not None]
        if status is not None and (status >= 500 or not outcomes):
            outcomes.append(_outcome_of_status(status))
        outcome = max(outcomes or [OK], key=_SEVERITY.__getitem__)
        costs = [op.cost for op in operations if op.cost is not None]
        # Requests refused before the view made a context still have the caller's id, if sane.
        request_id = (
            next((op.request_id for op in operations if op.request_id), None)
            or _valid_request_id(Headers(raw=response_start.get("headers", [])).get("x-request-id"))
            or _valid_request_id(Headers(scope=scope).get("x-request-id"))
        )
        subject = next((op.subject for op in operations if op.subject), None)
        graphql = scope.get("path") == self.graphql_path and not websocket
        # The matched route's template, never the path a client typed (it could hold anything).
        route = scope.get("route")
        path = getattr(route, "path", None)
        name = ",".join(op.name or ANONYMOUS for op in operations) if operations else None
        fields = {
            "request_id": request_id,
            "method": "WEBSOCKET" if websocket else _method(scope.get("method")),
            "path": path if isinstance(path, str) else None,
            "status": status,
            "operation": name if any(op.name for op in operations) else None,
            "operation_type": ",".join(op.type or "unknown" for op in operations) or None,
            "duration_ms": round(duration * 1000, 3),
            "cost": sum(costs) if costs else None,
            "outcome": outcome,
            "subject": subject,
        }
        level = logging.INFO if graphql or websocket else logging.DEBUG
        if request_log.isEnabledFor(level):
            request_log.log(
                level,
                "%s %s %s %s %s %.1fms",
                fields["method"],
                fields["path"],
                fields["operation"] or "-",
                status,
                outcome,
                fields["duration_ms"],
                extra={"fields": fields},
            )
        if graphql:
            self._count(operations, status, duration)

    def _count(self, operations: list[_Operation], status: int | None, duration: float) -> None:
        metrics = self.observability
        labels = [
            metrics.operation_label(op.name, authenticated=op.subject is not None)
            for op in operations
        ]
        for op, label in zip(operations, labels, strict=True):
            outcome = op.outcome or _outcome_of_status(status or 500)
            metrics.requests_of(label, outcome).inc()
            if op.cost is not None:
                metrics.cost_of(label).observe(op.cost)
        if not operations:
            metrics.requests_of(ANONYMOUS, _outcome_of_status(status or 500)).inc()
        latency_label = labels[0] if len(labels) == 1 else (BATCH if labels else ANONYMOUS)
        metrics.latency_of(latency_label).observe(duration)


def _method(method: object) -> str:
    return method if isinstance(method, str) and method in _METHODS else "OTHER"


def _valid_request_id(value: str | None) -> str | None:
    return value if value is not None and _REQUEST_ID.fullmatch(value) else None
