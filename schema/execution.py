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

import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from graphql import ExecutionResult, OperationType, Visitor, visit
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.leaves import ORDINARY, Leaf, leaf_of, leaf_value
from schema.observation import count_query_execution
from schema.planned_execution import QueryPlan, StatementRoot

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from graphql import GraphQLObjectType, GraphQLSchema, OperationDefinitionNode
    from graphql.execution import ExperimentalIncrementalExecutionResults
    from graphql.execution.collect_fields import FragmentDetails, GroupedFieldSet
    from graphql.pyutils import AwaitableOrValue


class OneStatementOperations:
    """Query operations that ran, validated, as one statement, with the root field that
    statement answers (schema/prepared_operations.py); the least recently recorded are dropped
    first."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        # By the node's id; the node is held, so the id stays its own. Documents come from
        # schema.limits.cached_parse: one object per query text while it is cached there.
        self._operations: OrderedDict[int, tuple[OperationDefinitionNode, StatementRoot]] = (
            OrderedDict()
        )

    def record(self, operation: OperationDefinitionNode, root: StatementRoot) -> None:
        self._operations[id(operation)] = (operation, root)
        self._operations.move_to_end(id(operation))
        if len(self._operations) > self._size:
            self._operations.popitem(last=False)

    def recorded(self, operation: OperationDefinitionNode) -> StatementRoot | None:
        entry = self._operations.get(id(operation))
        return entry[1] if entry is not None and entry[0] is operation else None


# Per schema: validation rules, limits among them, differ between apps.
_RECORDED: weakref.WeakKeyDictionary[GraphQLSchema, OneStatementOperations] = (
    weakref.WeakKeyDictionary()
)


def one_statement_operations(schema: GraphQLSchema) -> OneStatementOperations:
    recorded = _RECORDED.get(schema)
    if recorded is None:
        recorded = _RECORDED[schema] = OneStatementOperations()
    return recorded


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
            root = plan.statement_root
            operations = one_statement_operations(self.schema)
            # Validated and planned as one statement: later requests may skip the pipeline.
            # Not with directives: @skip and @include make the root's fields the variables'.
            if (
                root is not None
                and operations.recorded(self.operation) is None
                and not _has_directives(self.operation, self.fragments)
            ):
                operations.record(self.operation, root)
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


def _has_directives(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDetails]
) -> bool:
    found = False

    class Directives(Visitor):
        def enter_directive(self, *_: Any) -> None:
            nonlocal found
            found = True

    for node in (operation, *(fragment.definition for fragment in fragments.values())):
        visit(node, Directives())
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
