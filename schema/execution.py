"""The schema's execution context: queries and subscription events go to a plan
(schema/planned_execution.py) when it covers them; the rest, mutations among them, run on
graphql-core's executor, with a short path for plain leaf fields.

Most fields of a large response are scalars or enums read straight off an object (``mrn``,
``status``) or computed from it alone (``id``). graphql-core gives each of them a resolve-info
object, a resolver call through Strawberry's wrapper and the generic completion; here such a
field is read and serialized directly. Anything unusual (a null in a non-null field, a value that
does not serialize, an exception, field middleware) goes the ordinary way, so results and errors
are exactly the same.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from graphql import ExecutionResult, OperationType, Visitor, visit
from graphql.pyutils import Path
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.leaves import ORDINARY, Leaf, leaf_of, leaf_value
from schema.limits import coerced_variables
from schema.observation import count_query_execution
from schema.planned_execution import (
    QueryPlan,
    StatementRoot,
    callable_field,
    converted_arguments,
    field_arguments,
)
from schema.sql_trees import compiled_root
from schema.strawberry_adapter import graphql_schema

if TYPE_CHECKING:
    from collections.abc import Awaitable

    import strawberry
    from graphql import (
        DocumentNode,
        GraphQLField,
        GraphQLObjectType,
        GraphQLSchema,
        OperationDefinitionNode,
    )
    from graphql.execution import ExperimentalIncrementalExecutionResults
    from graphql.execution.collect_fields import (
        CollectedFields,
        FieldDetailsList,
        FragmentDetails,
        GroupedFieldSet,
    )
    from graphql.execution.values import VariableValues
    from graphql.pyutils import AwaitableOrValue

    from models.enums import Role
    from resolvers.context import RequestContext


class PlanKey(NamedTuple):
    """What decides whether an operation is answered by one statement: its document (one object
    per query text while the parse cache holds it, compared by identity), the operation asked
    for, and the caller's role class. Variables only fill the statement's parameters; a document
    with directives is not recorded, since their variables decide which fields there are."""

    document: int
    operation_name: str | None
    role: Role | None


class StatementPlans:
    """Operations that ran, validated, as one statement, with the root field that statement
    answers; the least recently recorded are dropped first."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        # The document is held with its plan, so its id stays its own.
        self._plans: OrderedDict[PlanKey, tuple[DocumentNode, StatementRoot]] = OrderedDict()

    def record(self, key: PlanKey, document: DocumentNode, root: StatementRoot) -> None:
        if _has_directives(document):
            return
        self._plans[key] = (document, root)
        self._plans.move_to_end(key)
        if len(self._plans) > self._size:
            self._plans.popitem(last=False)

    def recorded(self, key: PlanKey, document: DocumentNode) -> StatementRoot | None:
        entry = self._plans.get(key)
        return entry[1] if entry is not None and entry[0] is document else None


class _SelectionPlan(NamedTuple):
    """How one selection set is executed: its plain leaves here, the rest by graphql-core."""

    order: tuple[str, ...]
    leaves: tuple[tuple[str, Leaf], ...]
    others: GroupedFieldSet | None


class LeafShortcutExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry always passes a manager; it wraps resolvers only when it has middleware.
        manager = self.middleware_manager
        self._leaves_direct = manager is None or not manager.middlewares
        # graphql-core collects each selection set once per request (memoized by identity), so
        # its plan is made once too; the set is kept alive with the plan so ids stay unique.
        self._plans: dict[int, tuple[GroupedFieldSet, _SelectionPlan]] = {}
        # A subscription's events are run by copies of this context (graphql-core's per-event
        # executors), which share this list: the events' plan is made once per subscription.
        self._event_plan: list[QueryPlan | None] = []  # empty until the first event
        # Set when a query ran as one statement: the pipeline may answer it so next time.
        self.statement_root: StatementRoot | None = None

    def execute_operation(
        self, serially: bool | None = None
    ) -> AwaitableOrValue[ExecutionResult | ExperimentalIncrementalExecutionResults]:
        """Queries, and each event of a subscription, run by a plan
        (schema/planned_execution.py) when it covers them."""
        operation_type = self.operation.operation
        query = operation_type is OperationType.QUERY and serially is None
        # graphql-core executes each event of a subscription with serially=False.
        event = operation_type is OperationType.SUBSCRIPTION and serially is False
        if query or event:
            if event and self._event_plan:
                plan = self._event_plan[0]
            else:
                plan = self._new_plan()
                if event:
                    self._event_plan.append(plan)
            if plan is not None:
                return self._execute_planned(plan, serially, counted=query)
            if query:
                count_query_execution("unplanned")
        return super().execute_operation(serially)

    def _new_plan(self) -> QueryPlan | None:
        if not self._leaves_direct:
            return None
        try:
            return QueryPlan(self)
        except Exception:  # PlanUnavailable, or an argument the plan could not convert
            return None

    async def _execute_planned(
        self, plan: QueryPlan, serially: bool | None, *, counted: bool
    ) -> ExecutionResult | ExperimentalIncrementalExecutionResults:
        try:
            data = await plan.run(self.root_value)
        except Exception:
            # graphql-core runs the operation again and reports exactly what went wrong.
            if counted:
                count_query_execution("fallback")
            result = super().execute_operation(serially)
            if self.is_awaitable(result):
                return await cast("Awaitable[ExecutionResult]", result)
            return cast("ExecutionResult", result)
        if counted:
            count_query_execution("planned")
            self.statement_root = plan.statement_root
        return self.build_response(data)

    def _plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> _SelectionPlan:
        entry = self._plans.get(id(fields))
        if entry is None:
            leaves: list[tuple[str, Leaf]] = []
            others: GroupedFieldSet = {}
            for name, details in fields.items():
                field_def = self.schema.get_field(parent_type, details[0].node.name.value)
                leaf = None if field_def is None else leaf_of(field_def)
                if leaf is None:
                    others[name] = details
                else:
                    leaves.append((name, leaf))
            plan = _SelectionPlan(tuple(fields), tuple(leaves), others or None)
            entry = self._plans[id(fields)] = (fields, plan)
        return entry[1]

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        if not self._leaves_direct:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plan = self._plan(parent_type, grouped_field_set)
        values: dict[str, Any] = {}
        for name, leaf in plan.leaves:
            value = leaf_value(leaf, source_value)
            if value is ORDINARY:
                value = self.execute_field(
                    parent_type,
                    source_value,
                    grouped_field_set[name],
                    Path(path, name, parent_type.name),
                    position_context,
                )
            values[name] = value
        if plan.others is None:
            return values
        rest = super().execute_fields(
            parent_type, source_value, path, plan.others, position_context
        )
        if self.is_awaitable(rest):

            async def in_order() -> dict[str, Any]:
                return _in_order(plan.order, values, await rest)

            return in_order()
        return _in_order(plan.order, values, rest)  # type: ignore[arg-type]


def _has_directives(document: DocumentNode) -> bool:
    found = False

    class Directives(Visitor):
        def enter_directive(self, *_: Any) -> None:
            nonlocal found
            found = True

    visit(document, Directives())
    return found


def _in_order(
    order: tuple[str, ...], leaves: dict[str, Any], rest: dict[str, Any]
) -> dict[str, Any]:
    """Response keys in the order of the query, as the GraphQL spec orders them."""
    return {
        name: leaves[name] if name in leaves else rest[name]
        for name in order
        if name in leaves or name in rest
    }


async def run_statement(
    schema: strawberry.Schema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    context: RequestContext,
    root: StatementRoot,
) -> dict[str, Any] | None:
    """The data of a query whose plan is one statement (``StatementPlans``): the root field's
    arguments converted as graphql-core and Strawberry convert them, the field compiled by the
    same compiled_root (its statement cached per selection) and answered by that statement.
    None, with nothing read, when these variables or arguments do not fit the plan: then the
    executor runs the operation and reports exactly what is wrong."""
    served = graphql_schema(schema)
    variable_values = coerced_variables(served, operation, variables)
    if variable_values is None:
        return None
    source = _StatementSource(schema, document, context, variables, operation_name, variable_values)
    try:
        arguments = converted_arguments(
            schema.schema_converter,
            callable_field(root.field_def),
            field_arguments(root.field_def, root.details, variable_values),
            None,
        )
        read = compiled_root(
            source, root.name, root.field_def, root.details, arguments, source.arguments
        )
    except Exception:  # an argument that does not convert
        return None
    if read is None:
        return None
    try:
        value = await read(None)
    except Exception:  # the statement wrote nothing
        return None
    count_query_execution("prepared")
    return {root.key: value}


class _StatementSource:
    """What compiled_root reads of an execution context. The context itself, which costs more
    than the rest of the request, is built only when the selection's statement is not cached
    and has to be compiled from the document."""

    def __init__(
        self,
        schema: strawberry.Schema,
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
            built = LeafShortcutExecutionContext.build(
                graphql_schema(self._schema),
                self._document,
                None,
                self.context_value,
                self._variables,
                self._operation_name,
                is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # as Strawberry's
            )
            assert not isinstance(built, list), "the variables coerced once already"
            self._execution = cast("LeafShortcutExecutionContext", built)
        return self._execution
