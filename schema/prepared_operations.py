"""Queries answered by one statement, run again without Strawberry's operation pipeline.

A query whose only root field PostgreSQL answers in one statement (schema/sql_trees.py) does
all its reading there, access predicates included; only its audit row is left to append. Around
that statement Strawberry's pipeline (four extensions' hooks, the execution context, the
result's processing) cost more CPU than the statement's whole round trip.

So an operation that once ran that way (parsed, validated, and planned as one statement by the
whole pipeline) is recorded with its root field, and later requests for it run here: the
document from the parse cache, the variables coerced and the cost checked from them as
QueryLimits checks it, the root field's arguments converted as graphql-core and Strawberry do,
the field compiled by the same compiled_root (its statement cached per selection; graphql-core's
execution context is built only when the selection must be compiled again) and answered by the
same statement, its audit row appended as the audit extension appends it, and the request log
told what the extensions would have told them. Anything else (variables that do not coerce, a
cost over the limit, a field the statement cannot answer with these arguments, any exception)
returns None with nothing written, and the whole pipeline answers the request.

What the pipeline does per operation is known here, extension by extension (``_REPLAYED``): a
schema with any other extension or directive, or a document with directives (their variables
decide which fields there are), prepares nothing.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, cast

from graphql import GraphQLError, OperationType, get_operation_ast
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType as StrawberryOperationType

from schema.audit import AuditTrailExtension, DeliveryAudit, append_operation_row
from schema.errors import ErrorCodes
from schema.execution import LeafShortcutExecutionContext, one_statement_operations
from schema.limits import (
    QueryLimits,
    cached_parse,
    coerced_variables,
    cost_limit,
    operation_fixed_cost,
    query_cost,
)
from schema.observation import OperationObserver, count_query_execution, note_operation
from schema.planned_execution import callable_field, converted_arguments, field_arguments
from schema.sql_trees import compiled_root
from schema.strawberry_adapter import graphql_schema

if TYPE_CHECKING:
    from graphql import DocumentNode, GraphQLField, GraphQLObjectType, GraphQLSchema
    from graphql.execution.collect_fields import (
        CollectedFields,
        FieldDetailsList,
        FragmentDetails,
    )
    from graphql.execution.values import VariableValues
    from strawberry import Schema

    from resolvers.context import RequestContext

# The extensions whose work for a successful one-statement query is done here instead: the
# audit trail's description of the operation and its row (AuditTrailExtension), the cost
# (QueryLimits), the request log's note (OperationObserver). ErrorCodes has no errors to give
# codes to, validation rules (QueryLimits, AddValidationRules) were applied when the
# operation was recorded: a document's validity depends on nothing else, and DeliveryAudit acts
# on subscription events only.
_REPLAYED = frozenset(
    {
        AuditTrailExtension,
        DeliveryAudit,
        ErrorCodes,
        QueryLimits,
        OperationObserver,
        AddValidationRules,
    }
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
    served = graphql_schema(schema)
    if not _replayable(schema):
        return None
    root = one_statement_operations(served).recorded(operation)
    if root is None:
        return None
    # Coerced as graphql-core's execution context coerces them; no context is built unless the
    # statement for this selection is not cached (below).
    variable_values = coerced_variables(served, operation, variables)
    if variable_values is None:  # the variables do not coerce
        return None
    # The cost of the values the statement is given, as QueryLimits measures it.
    cost = operation_fixed_cost(served, document, operation)
    if cost is None:
        cost = query_cost(served, document, operation, variable_values)
    if cost > cost_limit(settings, context.viewer)[1]:
        return None
    source = _PreparedSource(schema, document, context, variables, operation_name, variable_values)
    try:
        converter = schema.schema_converter
        arguments = converted_arguments(
            converter,
            callable_field(root.field_def),
            field_arguments(root.field_def, root.details, variable_values),
            None,
        )
        read = compiled_root(
            source, root.name, root.field_def, root.details, arguments, source.arguments
        )
    except Exception:  # an argument that does not convert: the pipeline reports it
        return None
    if read is None:
        return None
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
    try:
        value = await read(None)
    except Exception:  # the statement wrote nothing; the whole pipeline reports it
        return None
    count_query_execution("prepared")
    result = ExecutionResult(data={root.key: value}, errors=None, extensions={"cost": cost})
    await append_operation_row(context, result)
    operation_context.result = result
    note_operation(operation_context)
    return result


class _PreparedSource:
    """What compiled_root reads of an execution context. The context itself, which costs more
    than the rest of the request, is built only when the selection's statement is not cached
    and has to be compiled from the document."""

    def __init__(
        self,
        schema: Schema,
        document: DocumentNode,
        context: RequestContext,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        variable_values: VariableValues,
    ) -> None:
        self._schema = schema
        self._document = document
        self._variables = variables
        self._operation_name = operation_name
        self.context_value = context
        self.variable_values = variable_values
        self._execution: LeafShortcutExecutionContext | None = None

    @property
    def schema(self) -> GraphQLSchema:
        return graphql_schema(self._schema)

    @property
    def fragments(self) -> dict[str, FragmentDetails]:
        return self._built().fragments

    def collect_subfields(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> CollectedFields:
        return self._built().collect_subfields(return_type, field_details_list)

    def arguments(self, field_def: GraphQLField, details: FieldDetailsList) -> dict[str, Any]:
        return field_arguments(field_def, details, self.variable_values)

    def _built(self) -> LeafShortcutExecutionContext:
        if self._execution is None:
            built = self._schema.execution_context_class.build(
                graphql_schema(self._schema),
                self._document,
                None,
                self.context_value,
                self._variables,
                self._operation_name,
                is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # as Strawberry's
            )
            assert not isinstance(built, list), "the variables coerced once already"
            # _replayable checked the class.
            self._execution = cast("LeafShortcutExecutionContext", built)
        return self._execution
