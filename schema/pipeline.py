"""The one sequence every GraphQL operation goes through, over HTTP and WebSockets alike:

1. parse, through a per-process cache, the token limit named as a limit (schema/limits.py);
2. choose the operation, and check its type against what the transport allows;
3. validate, cached per document and rules (the depth and alias limits are rules);
4. estimate the cost from the coerced variables and refuse it over the caller's limit;
5. execute: a query whose plan is known to be one statement (``StatementPlans``, by
   ``PlanKey``) runs that statement; everything else runs on graphql-core's executor with
   ``LeafShortcutExecutionContext`` (schema/execution.py), which plans queries and each
   subscription event itself and reports a one-statement plan for next time;
6. give every error a contract code, and unexpected ones nothing else (schema/errors.py);
7. append the audit row (schema/audit.py): once per operation, and once per delivered event;
8. note the operation for the request's log line and metrics (schema/observation.py).

``MedrecSchema`` (schema/schema.py) sends Strawberry's ``execute`` and ``stream`` here, so its
HTTP view and WebSocket handlers run nothing else. Strawberry's schema extensions are not used.
"""

from __future__ import annotations

import inspect
import logging
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, get_operation_ast, subscribe
from strawberry.exceptions import MissingQueryError
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_first_operation, get_operation_type

from app.data.replicas import written_position
from app.domain.errors import DATABASE_OUTAGES, ApiError
from app.domain.viewer import effective_role
from schema.audit import append_delivery_row, append_operation_row, touches_data
from schema.errors import unexpected, with_codes
from schema.execution import (
    LeafShortcutExecutionContext,
    PlanKey,
    StatementPlans,
    run_statement,
)
from schema.limits import (
    cost_refusal,
    no_operation,
    operation_cost,
    parsed_document,
    validation_errors,
    validation_rules,
)
from schema.observation import OperationRun, note_operation
from schema.strawberry_adapter import graphql_schema

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterable

    import strawberry
    from graphql import DocumentNode, OperationDefinitionNode
    from graphql.execution import Executor

    from resolvers.context import RequestContext

log = logging.getLogger("medrec.pipeline")

_REQUEST_REFUSALS = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)


class OperationPipeline:
    def __init__(self, schema: strawberry.Schema, *, introspection: bool) -> None:
        self._schema = schema
        self._introspection = introspection
        self._plans = StatementPlans()

    async def execute(
        self,
        query: str | None,
        variables: dict[str, Any] | None,
        context: RequestContext,
        operation_name: str | None,
        allowed: Iterable[OperationType],
    ) -> ExecutionResult:
        """A query or mutation's result. A request that names no operation it may run raises
        Strawberry's request errors, which its HTTP view answers with a 400."""
        run = OperationRun(query, operation_name, variables, context.for_operation())
        note_operation(run)
        errors = self._prepare(run, allowed)
        result = PreExecutionError(data=None, errors=errors) if errors else await self._execute(run)
        await self._finish(run, result)
        return result

    async def stream(
        self,
        query: str | None,
        variables: dict[str, Any] | None,
        context: RequestContext,
        operation_name: str | None,
        allowed: Iterable[OperationType],
    ) -> AsyncGenerator[ExecutionResult, None]:
        """A subscription's events, or a query or mutation's one result, for a streaming
        transport; a result refused before execution is a ``PreExecutionError``."""
        run = OperationRun(query, operation_name, variables, context.for_operation())
        note_operation(run)
        try:
            errors = self._prepare(run, allowed)
        except _REQUEST_REFUSALS as error:
            errors = [_request_error(error)]
        if errors:
            refused = PreExecutionError(data=None, errors=errors)
            await self._finish(run, refused)
            yield refused
            return
        if run.type is not OperationType.SUBSCRIPTION:
            result = await self._execute(run)
            await self._finish(run, result)
            yield result
            return
        events = await self._subscribe(run)
        if isinstance(events, PreExecutionError):
            await self._finish(run, events)
            yield events
            return
        context = run.context
        last: ExecutionResult | None = None
        async with aclosing(events):
            try:
                async for event in events:
                    last = self._coded(run, ExecutionResult(data=event.data, errors=event.errors))
                    if last.data is not None and not await append_delivery_row(context, last):
                        yield last  # the event without its data, and the stream ends
                        return
                    yield last
            except Exception as error:  # graphql-core does not catch the source's exceptions
                failure = _as_error(error, context.request_id)
                last = self._coded(run, ExecutionResult(data=None, errors=[failure]))
                yield last
        await self._finish(run, last or ExecutionResult(data=None, errors=None))

    # --- the steps

    def _prepare(self, run: OperationRun, allowed: Iterable[OperationType]) -> list[GraphQLError]:
        """Steps 1 to 4; the errors that stop the operation before it executes."""
        if not run.query:
            raise MissingQueryError
        context = run.context
        settings = context.settings
        document = parsed_document(run.query, settings.query_max_tokens)
        if isinstance(document, GraphQLError):
            return [document]
        run.document = document
        requested = run.requested_name
        try:
            run.type = get_operation_type(document, requested)
        except RuntimeError:
            raise CannotGetOperationTypeError(requested) from None
        if run.type not in allowed:
            raise InvalidOperationTypeError(run.type)
        context.audit.describe_operation(
            requested if requested is not None else _first_name(document),
            run.type.value,
            run.query,
        )
        served = graphql_schema(self._schema)
        rules = validation_rules(settings, introspection=self._introspection)
        errors = validation_errors(served, document, rules)
        operation = run.operation = get_operation_ast(document, requested)
        if operation is None:
            # Several operations, none named: nothing runs (not even the first).
            return errors or [no_operation(requested)]
        run.cost = operation_cost(served, document, operation, run.variables, valid=not errors)
        if errors:
            return errors
        refusal = cost_refusal(run.cost, settings, context.viewer, operation)
        return [] if refusal is None else [refusal]

    async def _execute(self, run: OperationRun) -> ExecutionResult:
        """Step 5 for a query or mutation."""
        document, operation = cast("DocumentNode", run.document), run.operation
        assert operation is not None, "prepared"
        context = run.context
        viewer = context.viewer
        key = PlanKey(
            id(document), run.requested_name, None if viewer is None else effective_role(viewer)
        )
        if run.type is OperationType.QUERY and self._plans_statements():
            root = self._plans.recorded(key, document)
            if root is not None:
                data = await run_statement(
                    self._schema,
                    document,
                    operation,
                    run.requested_name,
                    run.variables,
                    context,
                    root,
                )
                if data is not None:
                    return ExecutionResult(data=data, errors=None)
        executor = self._executor(run)
        if isinstance(executor, list):
            return ExecutionResult(data=None, errors=executor)
        outcome = executor.execute_operation()
        done = cast(
            "GraphQLExecutionResult",
            outcome if isinstance(outcome, GraphQLExecutionResult) else await outcome,  # type: ignore[misc]
        )
        root = getattr(executor, "statement_root", None)
        if root is not None:
            self._plans.record(key, document, root)
        return ExecutionResult(data=done.data, errors=done.errors)

    async def _subscribe(
        self, run: OperationRun
    ) -> AsyncGenerator[GraphQLExecutionResult, None] | PreExecutionError:
        """Step 5 for a subscription: its source stream mapped to events, or why it cannot
        start (a ``PreExecutionError``)."""
        events = subscribe(
            graphql_schema(self._schema),
            cast("DocumentNode", run.document),
            context_value=run.context,
            variable_values=run.variables,
            operation_name=run.requested_name,
            executor_class=self._schema.execution_context_class,
        )
        if inspect.isawaitable(events):
            events = await events
        if isinstance(events, GraphQLExecutionResult):
            return PreExecutionError(data=None, errors=events.errors)
        return cast("AsyncGenerator[GraphQLExecutionResult, None]", events)

    def _plans_statements(self) -> bool:
        # Read each time: a test swaps in Strawberry's class to compare answers with graphql-core.
        return issubclass(self._schema.execution_context_class, LeafShortcutExecutionContext)

    def _executor(self, run: OperationRun) -> Executor[Any] | list[GraphQLError]:
        built = self._schema.execution_context_class.build(
            graphql_schema(self._schema),
            cast("DocumentNode", run.document),
            None,
            run.context,
            run.variables,
            run.requested_name,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # as Strawberry's
        )
        return built

    def _coded(self, run: OperationRun, result: ExecutionResult) -> ExecutionResult:
        """Step 6, and the cost every result reports."""
        if result.errors:
            result.errors = with_codes(result.errors, run.context.request_id)
        result.extensions = {"cost": run.cost}
        return result

    async def _finish(self, run: OperationRun, result: ExecutionResult) -> None:
        """Steps 6 to 8 for the operation's own result."""
        self._coded(run, result)
        audited = _audited_operation(run)
        if audited is not None and touches_data(audited):
            await run.context.release_reads()
            await append_operation_row(run.context, result)
        if run.type is OperationType.MUTATION:
            await _add_consistency(run.context, result)
        run.result = result


async def _add_consistency(context: RequestContext, result: ExecutionResult) -> None:
    """A mutation's answer carries the primary's position once its transaction ended: a read that
    sends it back (X-Medrec-Consistency) sees at least what it committed (app/data/replicas.py)."""
    await context.release_reads()  # the position is the primary's
    try:
        async with context.drivers() as driver:
            position = await written_position(driver.connection)
    except DATABASE_OUTAGES:
        # What committed stays committed; the answer goes without a token.
        log.warning("consistency token not made: database unavailable")
        return
    extensions = result.extensions if result.extensions is not None else {}
    extensions["consistency"] = context.ids.encode_consistency(position)
    result.extensions = extensions


def _first_name(document: DocumentNode) -> str | None:
    first = get_first_operation(document)
    return None if first is None or first.name is None else first.name.value


def _audited_operation(run: OperationRun) -> OperationDefinitionNode | None:
    """The operation a row is due for: the one chosen, else the one the request named, else
    the document's first (a refused document of several operations is still audited)."""
    if run.operation is not None or run.document is None:
        return run.operation
    requested = run.requested_name
    if requested is None:
        return get_first_operation(run.document)
    return get_operation_ast(run.document, requested)


def _request_error(error: Exception) -> GraphQLError:
    """Strawberry's request errors as a streaming transport reports them."""
    if isinstance(error, CannotGetOperationTypeError):
        return GraphQLError(error.as_http_error_reason(), original_error=error)
    if isinstance(error, InvalidOperationTypeError):
        kinds = {
            OperationType.QUERY: "queries",
            OperationType.MUTATION: "mutations",
            OperationType.SUBSCRIPTION: "subscriptions",
        }
        return GraphQLError(f"{kinds[error.operation_type]} are not allowed", original_error=error)
    return GraphQLError(str(error), original_error=error)


def _as_error(error: Exception, request_id: str) -> GraphQLError:
    """An exception a subscription's source raised: ours to report as graphql-core would have
    (an ``ApiError`` keeps its code), anything else masked."""
    if isinstance(error, GraphQLError):
        return error
    if isinstance(error, ApiError):
        return GraphQLError(error.message, original_error=error)
    return unexpected(error, request_id)
