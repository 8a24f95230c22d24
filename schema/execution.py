"""graphql-core's executor, with a short path for plain leaf fields.

Most fields of a large response are scalars or enums read straight off an object (``mrn``,
``status``) or computed from it alone (``id``). graphql-core gives each of them a resolve-info
object, a resolver call through Strawberry's wrapper and the generic completion; here such a
field is read and serialized directly. Anything unusual (a null in a non-null field, a value that
does not serialize, an exception, field middleware) goes the ordinary way, so results and errors
are exactly the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from graphql import (
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLScalarType,
    Undefined,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

if TYPE_CHECKING:
    from graphql import GraphQLField, GraphQLObjectType
    from graphql.execution.collect_fields import GroupedFieldSet
    from graphql.pyutils import AwaitableOrValue


SourceT = TypeVar("SourceT")
ValueT = TypeVar("ValueT")

_PLAIN = "_medrec_plain_resolver"


def plain_resolver(method: Callable[[SourceT], ValueT]) -> Callable[[SourceT], ValueT]:
    """Marks a resolver that computes a leaf from its object alone: synchronous, with no
    arguments and no info. The executor may call it like an attribute read."""
    setattr(method, _PLAIN, True)
    return method


class _Leaf(NamedTuple):
    read: Callable[[Any, None], Any]
    coerce: Callable[[Any], Any]
    nullable: bool


# One entry per field definition of the process's schemas, keyed by identity (GraphQLField
# defines __eq__ and so is not hashable); the definitions live as long as the process.
_LEAVES: dict[int, tuple[GraphQLField, _Leaf | None]] = {}


def _leaf(field_def: GraphQLField) -> _Leaf | None:
    entry = _LEAVES.get(id(field_def))
    if entry is None:
        entry = _LEAVES[id(field_def)] = (field_def, _leaf_of(field_def))
    return entry[1]


def _reader(field_def: GraphQLField) -> Callable[[Any, None], Any] | None:
    resolve = field_def.resolve
    if resolve is None or field_def.args:
        return None
    # Strawberry marks the resolvers of fields that only read an attribute, with no arguments,
    # permissions or extensions; they ignore their info argument.
    if getattr(resolve, "_is_default", False):
        return resolve
    strawberry_field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    resolver = getattr(strawberry_field, "base_resolver", None)
    if (
        resolver is not None
        and getattr(resolver.wrapped_func, _PLAIN, False)
        and not strawberry_field.extensions  # type: ignore[union-attr]
    ):
        method = resolver.wrapped_func
        return lambda source, _: method(source)
    return None


def _leaf_of(field_def: GraphQLField) -> _Leaf | None:
    """How to read a field without resolve info, when it is a plain leaf of its object."""
    read = _reader(field_def)
    if read is None:
        return None
    nullable = not isinstance(field_def.type, GraphQLNonNull)
    named = field_def.type if nullable else field_def.type.of_type  # type: ignore[union-attr]
    if not isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return None
    return _Leaf(read=read, coerce=named.coerce_output_value, nullable=nullable)


_ORDINARY = object()  # the leaf needs graphql-core's own handling (a null or an error)


def _leaf_value(leaf: _Leaf, source: Any) -> Any:
    try:
        value = leaf.read(source, None)
        if value is None:
            return None if leaf.nullable else _ORDINARY
        coerced = leaf.coerce(value)
    except Exception:
        return _ORDINARY
    return _ORDINARY if coerced is None or coerced is Undefined else coerced


class _SelectionPlan(NamedTuple):
    """How one selection set is executed: its plain leaves here, the rest by graphql-core."""

    order: tuple[str, ...]
    leaves: tuple[tuple[str, _Leaf], ...]
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

    def _plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> _SelectionPlan:
        entry = self._plans.get(id(fields))
        if entry is None:
            leaves: list[tuple[str, _Leaf]] = []
            others: GroupedFieldSet = {}
            for name, details in fields.items():
                field_def = self.schema.get_field(parent_type, details[0].node.name.value)
                leaf = None if field_def is None else _leaf(field_def)
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
            value = _leaf_value(leaf, source_value)
            if value is _ORDINARY:
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


def _in_order(
    order: tuple[str, ...], leaves: dict[str, Any], rest: dict[str, Any]
) -> dict[str, Any]:
    """Response keys in the order of the query, as the GraphQL spec orders them."""
    return {
        name: leaves[name] if name in leaves else rest[name]
        for name in order
        if name in leaves or name in rest
    }
