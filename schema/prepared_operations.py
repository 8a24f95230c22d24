"""Queries answered by one statement, run again without Strawberry's operation pipeline.

A query whose only root field PostgreSQL answers in one statement (schema/sql_trees.py) does all
its work there: the read, its access predicates and its audit row. Around that statement
Strawberry's pipeline (four extensions' hooks, the execution context, the result's processing)
cost more CPU than the statement's whole round trip.

So an operation that once ran that way (parsed, validated, and planned as one statement by the
whole pipeline) is recorded, and later requests for it run here: the document from the parse
cache, the cost checked as QueryLimits checks it, the operation planned by the same QueryPlan
and answered by the same statement, the audit trail and the request log told what the
extensions would have told them. Anything else (variables that do not coerce, a cost over the
limit, a plan that is not one statement with these variables, any exception) returns None with
nothing written, and the whole pipeline answers the request.

What the pipeline does per operation is known here, extension by extension (``_REPLAYED``): a
schema with any other extension, or with directives, prepares nothing.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, cast

from graphql import GraphQLError, OperationType, get_operation_ast
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType as StrawberryOperationType

from app.observability import OperationObserver, note_operation
from schema.audit import AuditTrailExtension
from schema.errors import ErrorCodes
from schema.execution import LeafShortcutExecutionContext, one_statement_operations
from schema.limits import QueryLimits, cached_parse, cost_limit, query_cost

if TYPE_CHECKING:
    from strawberry import Schema

    from app.context import RequestContext

# The extensions whose work for a successful one-statement query is done here instead: the
# audit trail's description of the operation (AuditTrailExtension), the cost (QueryLimits),
# the request log's note (OperationObserver). ErrorCodes has no errors to give codes to, and
# validation rules (QueryLimits, AddValidationRules) were applied when the operation was
# recorded: a document's validity depends on nothing else.
_REPLAYED = frozenset(
    {AuditTrailExtension, ErrorCodes, QueryLimits, OperationObserver, AddValidationRules}
)
_REPLAYABLE: weakref.WeakKeyDictionary[Schema, bool] = weakref.WeakKeyDictionary()


def _replayable(schema: Schema) -> bool:
    replayable = _REPLAYABLE.get(schema)
    if replayable is None:
        extensions = [
            type(extension if isinstance(extension, SchemaExtension) else extension())
            for extension in schema.extensions
        ]
        replayable = _REPLAYABLE[schema] = not schema.directives and all(
            extension in _REPLAYED for extension in extensions
        )
    # Not cached: a test swaps the class to compare answers with graphql-core's.
    return replayable and issubclass(schema.execution_context_class, LeafShortcutExecutionContext)


async def execute_prepared(
    schema: Schema,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: RequestContext,
) -> ExecutionResult | None:
    """The result of a recorded operation, or None with nothing done."""
    settings = context.settings
    try:
        document = cached_parse(query, max_tokens=settings.query_max_tokens)
    except GraphQLError:
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    graphql_schema = schema._schema
    if not _replayable(schema) or not one_statement_operations(graphql_schema).recorded(operation):
        return None
    cost = query_cost(graphql_schema, document, operation, variables)
    if cost > cost_limit(settings, context.viewer)[1]:
        return None
    built = schema.execution_context_class.build(
        graphql_schema,
        document,
        None,
        context,
        variables,
        operation_name,
        is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # as Strawberry passes it
    )
    if isinstance(built, list):  # the variables do not coerce
        return None
    execution = cast("LeafShortcutExecutionContext", built)  # _replayable checked the class
    operation_context = ExecutionContext(
        query=query,
        schema=schema,
        allowed_operations=(StrawberryOperationType.QUERY,),
        context=context,
        variables=variables,
        provided_operation_name=operation_name,
        graphql_document=document,
    )
    context.audit.describe_operation(operation_context.operation_name, "query", query)
    executed = await execution.execute_one_statement()
    if executed is None:
        return None
    result = ExecutionResult(data=executed.data, errors=None, extensions={"cost": cost})
    operation_context.result = result
    note_operation(operation_context)
    return result
