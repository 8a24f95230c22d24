"""Queries (and the events of subscriptions) executed breadth-first, by a plan made once.

graphql-core completes a response field by field and object by object: every non-leaf value costs
a resolve-info object, a resolver call through Strawberry's wrapper, argument conversion and a
generic completion, and every awaitable a task of its own. A query's shape is known before it
runs, so here each selection set is planned once per request, or once per subscription for its
events (arguments converted once per field, resolve info built once per field), and the
response is filled level by level: one ``gather`` per level, so each level's DataLoader batch is
one statement, as before.

A root field whose whole selection PostgreSQL can write as JSON (schema/sql_trees.py) is one
statement instead, its text put into the response as it is.

The plan covers what our read queries use: concrete object types, lists, leaves. Anything else
(an abstract type, introspection, a field extension, @defer) keeps graphql-core's executor, and
so does anything unusual at run time: an exception, a null in a non-null field, a value that
does not serialize. Then the whole operation runs again through graphql-core, which produces the
result and errors exactly as before (the DataLoaders' caches make the second run cheap).
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
)
from graphql.execution.collect_fields import collect_fields
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from strawberry import ID
from strawberry.schema.schema_converter import GraphQLCoreConverter, get_arguments
from strawberry.types.arguments import convert_arguments
from strawberry.types.base import StrawberryMaybe, StrawberryOptional

from schema.leaves import ORDINARY, Leaf, leaf_of, leaf_value, output_coercer, plain_reader
from schema.sql_trees import compiled_root
from schema.strawberry_adapter import handles_exceptions, strawberry_schema

if TYPE_CHECKING:
    from graphql import GraphQLField, GraphQLOutputType, GraphQLResolveInfo
    from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
    from graphql.execution.values import VariableValues
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
    from strawberry.types import Info
    from strawberry.types.arguments import StrawberryArgument
    from strawberry.types.field import StrawberryField


class PlanUnavailable(Exception):
    """The operation uses something the plan does not cover; graphql-core executes it."""


class PlanAbandoned(Exception):
    """Something unusual happened at run time; graphql-core executes the operation again."""


# Objects to fill on one level: the plan of the object's selection set, its source, its output.
Level: TypeAlias = "list[tuple[ObjectPlan, Any, dict[str, Any]]]"
Complete: TypeAlias = Callable[[Any, "Level"], Any]


@dataclass(slots=True)
class StatementRoot:
    """The one root field of an operation that one statement answers, as collected."""

    key: str
    name: str
    field_def: GraphQLField
    details: FieldDetailsList


class FieldPlan(NamedTuple):
    key: str
    leaf: Leaf | None  # a plain leaf: read and serialized in place
    resolve: Callable[[Any], Any] | None  # otherwise: the value from its source ...
    complete: Complete | None  # ... and how it becomes response data


# The fields of one selection set, in response order.
ObjectPlan: TypeAlias = tuple[FieldPlan, ...]


class QueryPlan:
    """The plan of one query operation for one request (its variables fix every argument), or
    of one subscription event."""

    def __init__(self, execution: StrawberryGraphQLCoreExecutionContext) -> None:
        self._execution = execution
        schema = execution.schema
        self._converter: GraphQLCoreConverter = strawberry_schema(schema).schema_converter
        if handles_exceptions(self._converter):
            raise PlanUnavailable("exception handlers convert errors into results")
        operation = execution.operation
        root_type = schema.get_root_type(operation.operation)
        if root_type is None:
            raise PlanUnavailable("no root type")
        collected = collect_fields(
            schema,
            execution.fragments,
            execution.variable_values,
            root_type,
            operation,
            execution.hide_suggestions,
        )
        if collected.new_defer_usages or collected.forbidden_directive_instances:
            raise PlanUnavailable("@defer")
        # A root field alone in its operation is the whole operation (see statement_root).
        self._root_fields = len(collected.grouped_field_set)
        # Set when the whole operation is that field, answered by one statement.
        self.statement_root: StatementRoot | None = None
        self.root = self._object_plan(root_type, collected.grouped_field_set, None)

    # --- planning

    def _object_plan(
        self, parent_type: GraphQLObjectType, fields: GroupedFieldSet, path: Path | None
    ) -> ObjectPlan:
        return tuple(
            self._field_plan(parent_type, key, details, Path(path, key, parent_type.name))
            for key, details in fields.items()
        )

    def _field_plan(
        self,
        parent_type: GraphQLObjectType,
        key: str,
        details: FieldDetailsList,
        path: Path,
    ) -> FieldPlan:
        node = details[0].node
        name = node.name.value
        if name == "__typename":
            type_name = parent_type.name
            return FieldPlan(key, Leaf(lambda _: type_name, str, nullable=False), None, None)
        if name.startswith("__"):
            raise PlanUnavailable("introspection")
        field_def = self._execution.schema.get_field(parent_type, name)
        if field_def is None or field_def.resolve is None:
            raise PlanUnavailable(f"no resolver for {parent_type.name}.{name}")
        leaf = leaf_of(field_def)
        if leaf is not None:
            return FieldPlan(key, leaf, None, None)
        info = self._execution.build_resolve_info(
            field_def, [d.node for d in details], parent_type, path
        )
        arguments = None
        if path.prev is None and parent_type is self._execution.schema.query_type:
            # A root field whose selection PostgreSQL can write as JSON in one statement.
            arguments = self._arguments_of(field_def, details, info)
            read = compiled_root(
                self._execution,
                name,
                field_def,
                details,
                arguments,
                self._arguments,
            )
            if read is not None:
                if self._root_fields == 1:
                    self.statement_root = StatementRoot(key, name, field_def, details)
                return FieldPlan(key, None, read, _as_read)
        return FieldPlan(
            key,
            None,
            self._resolver(field_def, details, info, arguments),
            self._completion(field_def.type, details, info, path),
        )

    def _resolver(
        self,
        field_def: Any,
        details: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        arguments: dict[str, Any] | None = None,
    ) -> Callable[[Any], Any]:
        """``arguments``: the converted arguments, when the caller has them already."""
        if field_def.subscribe is not None:
            # One event of a subscription: graphql-core's resolver maps the event to the field.
            resolve = field_def.resolve
            event_arguments = self._arguments(field_def, details)
            return lambda source: resolve(source, info, **event_arguments)
        read = plain_reader(field_def)
        if read is not None:
            return read
        field = callable_field(field_def)
        resolver = field.base_resolver
        assert resolver is not None
        if arguments is None:
            arguments = self._arguments_of(field_def, details, info)
        function: Callable[..., Any] = resolver.wrapped_func  # type: ignore[assignment]
        if resolver.self_parameter is not None:
            return lambda source: function(source, **arguments)
        return lambda _: function(**arguments)

    def _arguments_of(
        self, field_def: Any, details: FieldDetailsList, info: GraphQLResolveInfo[Any]
    ) -> dict[str, Any]:
        """The arguments as Strawberry passes them to the field's function (inputs converted).
        The same for every source: they depend on the field node and the variables only."""
        field = callable_field(field_def)
        strawberry_info = self._converter.config.info_class(_raw_info=info, _field=field)
        return converted_arguments(
            self._converter, field, self._arguments(field_def, details), strawberry_info
        )

    def _arguments(self, field_def: Any, details: FieldDetailsList) -> dict[str, Any]:
        execution = self._execution
        return field_arguments(
            field_def, details, execution.variable_values, execution.hide_suggestions
        )

    def _completion(
        self,
        type_: GraphQLOutputType,
        details: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
    ) -> Complete:
        if isinstance(type_, GraphQLNonNull):
            inner = self._completion(type_.of_type, details, info, path)

            def complete_non_null(value: Any, level: Level) -> Any:
                if value is None:
                    raise PlanAbandoned("null in a non-null field")
                return inner(value, level)

            return complete_non_null
        if isinstance(type_, GraphQLList):
            item = self._completion(type_.of_type, details, info, Path(path, 0, None))

            def complete_list(value: Any, level: Level) -> Any:
                if value is None:
                    return None
                return [item(member, level) for member in value]

            return complete_list
        if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
            return _leaf_completion(output_coercer(type_))
        if isinstance(type_, GraphQLObjectType):
            return self._object_completion(type_, details, info, path)
        raise PlanUnavailable("an abstract type")

    def _object_completion(
        self,
        type_: GraphQLObjectType,
        details: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
    ) -> Complete:
        subfields = self._execution.collect_subfields(type_, details)
        if subfields.new_defer_usages:
            raise PlanUnavailable("@defer")
        plan = self._object_plan(type_, subfields.grouped_field_set, path)
        is_type_of = type_.is_type_of
        expected = _expected_classes(type_)

        def complete_object(value: Any, level: Level) -> Any:
            if value is None:
                return None
            if (
                is_type_of is not None
                and type(value) not in expected
                and is_type_of(value, info) is not True
            ):
                raise PlanAbandoned("a value of another type")
            out: dict[str, Any] = {}
            level.append((plan, value, out))
            return out

        return complete_object

    # --- execution

    async def run(self, root_value: Any) -> dict[str, Any]:
        """The response data; raises PlanAbandoned (or the resolver's error) when it cannot."""
        is_awaitable = self._execution.is_awaitable
        data: dict[str, Any] = {}
        level: Level = [(self.root, root_value, data)]
        while level:
            following: Level = []
            waiting: list[tuple[Awaitable[Any], Complete, dict[str, Any], str]] = []
            try:
                for plan, source, out in level:
                    for key, leaf, resolve, complete in plan:
                        if leaf is not None:
                            value = leaf_value(leaf, source)
                            if value is ORDINARY:
                                raise PlanAbandoned("a leaf needs graphql-core")
                            out[key] = value
                            continue
                        value = resolve(source)  # type: ignore[misc]
                        if is_awaitable(value):
                            out[key] = None  # holds the key's place in the response order
                            waiting.append((value, complete, out, key))  # type: ignore[arg-type]
                        else:
                            out[key] = complete(value, following)  # type: ignore[misc]
            except BaseException:
                _discard(waiting)
                raise
            if len(waiting) == 1:
                # One field to wait for (a root field, a level of one batch): awaited here, not
                # wrapped in a task of its own.
                pending, complete, out, key = waiting[0]
                try:
                    result = await pending
                except Exception as error:
                    raise PlanAbandoned("a resolver failed") from error
                out[key] = complete(result, following)
            elif waiting:
                results = await asyncio.gather(
                    *(pending for pending, _, _, _ in waiting), return_exceptions=True
                )
                for (_, complete, out, key), result in zip(waiting, results, strict=True):
                    if isinstance(result, BaseException):
                        raise PlanAbandoned("a resolver failed") from result
                    out[key] = complete(result, following)
            level = following
        return data


def field_arguments(
    field_def: GraphQLField,
    details: FieldDetailsList,
    variable_values: VariableValues,
    hide_suggestions: bool = False,
) -> dict[str, Any]:
    """The field's arguments as graphql-core passes them to a resolver."""
    first = details[0]
    if not (field_def.args or first.node.arguments):
        return {}
    return get_argument_values(
        field_def, first.node, variable_values, first.fragment_variable_values, hide_suggestions
    )


def converted_arguments(
    converter: GraphQLCoreConverter,
    field: StrawberryField,
    arguments: dict[str, Any],
    info: Info | None,
) -> dict[str, Any]:
    """``arguments`` as Strawberry passes them to the field's function (inputs converted);
    without ``info``, the values alone (no ``info`` the function would be given)."""
    if info is None:
        names = _plain_argument_names(converter, field)
        if names is not None:
            # Strawberry passes built-in scalars as they are: only their names change.
            return {python: arguments[graphql] for graphql, python in names if graphql in arguments}
        return convert_arguments(
            arguments,
            field.arguments,
            scalar_registry=converter.scalar_registry,
            config=converter.config,
        )
    _, converted = get_arguments(
        field=field,
        source=None,
        info=info,
        kwargs=arguments,
        config=converter.config,
        scalar_registry=converter.scalar_registry,
    )
    return converted


# Arguments Strawberry's conversion gives back as they are (strawberry.ID is a NewType of str).
_PLAIN_SCALARS = frozenset({str, int, float, bool, ID})


_PLAIN_NAMES: weakref.WeakKeyDictionary[
    GraphQLCoreConverter, dict[StrawberryField, tuple[tuple[str, str], ...] | None]
] = weakref.WeakKeyDictionary()


def _plain_argument_names(
    converter: GraphQLCoreConverter, field: StrawberryField
) -> tuple[tuple[str, str], ...] | None:
    """(GraphQL name, Python name) of each argument when all are built-in scalars, optional or
    not (conversion walks each argument's type on every call); None otherwise. Per converter:
    its config names the arguments."""
    known = _PLAIN_NAMES.setdefault(converter, {})
    if field not in known:
        plain = all(_plain_scalar(argument) for argument in field.arguments)
        name_of = converter.config.name_converter.from_argument
        known[field] = (
            tuple((name_of(argument), str(argument.python_name)) for argument in field.arguments)
            if plain
            else None
        )
    return known[field]


def _plain_scalar(argument: StrawberryArgument) -> bool:
    type_: Any = argument.type
    if isinstance(type_, StrawberryOptional) and not isinstance(type_, StrawberryMaybe):
        type_ = type_.of_type
    return type_ in _PLAIN_SCALARS and argument.python_name is not None


def callable_field(field_def: Any) -> StrawberryField:
    """The Strawberry field of a resolver the plan may call itself, with converted arguments."""
    field: StrawberryField | None = field_def.extensions.get(
        GraphQLCoreConverter.DEFINITION_BACKREF
    )
    resolver = None if field is None else field.base_resolver
    if (
        field is None
        or resolver is None
        or field.extensions
        or resolver.parent_parameter is not None
        or resolver.root_parameter is not None
    ):
        raise PlanUnavailable("a resolver the plan cannot call directly")
    return field


def _as_read(value: Any, _: Level) -> Any:
    return value  # JSON PostgreSQL wrote (schema/sql_trees.py), or null


def _discard(waiting: list[tuple[Awaitable[Any], Complete, dict[str, Any], str]]) -> None:
    # Resolvers already called but never to be awaited: close them, or Python warns.
    for pending, _, _, _ in waiting:
        if inspect.iscoroutine(pending):
            pending.close()


def _expected_classes(type_: GraphQLObjectType) -> frozenset[type]:
    """Classes whose instances Strawberry's own ``is_type_of`` accepts without asking it."""
    definition = type_.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if definition is None or definition.is_type_of is not None:
        return frozenset()  # a type's own is_type_of decides alone
    classes = {definition.origin}
    if definition.concrete_of is not None:
        classes.add(definition.concrete_of.origin)  # a generic type's specialization
    return frozenset(classes)


def _leaf_completion(coerce: Callable[[Any], Any]) -> Complete:
    def complete_leaf(value: Any, _: Level) -> Any:
        if value is None:
            return None
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise PlanAbandoned("a leaf that does not serialize")
        return coerced

    return complete_leaf
