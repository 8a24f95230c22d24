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
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

if TYPE_CHECKING:
    from graphql import GraphQLField, GraphQLObjectType
    from graphql.execution.collect_fields import FieldDetailsList
    from graphql.pyutils import AwaitableOrValue, Path


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


class LeafShortcutExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry always passes a manager; it wraps resolvers only when it has middleware.
        manager = self.middleware_manager
        self._leaves_direct = manager is None or not manager.middlewares

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        if field_def is not None and self._leaves_direct:
            leaf = _leaf(field_def)
            if leaf is not None:
                try:
                    value = leaf.read(source, None)
                    if value is None:
                        if leaf.nullable:
                            return None
                    else:
                        coerced = leaf.coerce(value)
                        if coerced is not None and coerced is not Undefined:
                            return coerced
                except Exception:  # noqa: S110 - the ordinary path reports it
                    pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
