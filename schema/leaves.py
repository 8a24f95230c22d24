"""Plain leaf fields: scalars and enums read straight off their object, without resolve info.

Most fields of a large response are such leaves (``mrn``, ``status``) or are computed from their
object alone (``id``). Both executors (schema/execution.py, schema/planned_execution.py) read
and serialize them directly; anything unusual (a null in a non-null field, a value that does not
serialize, an exception) is left to graphql-core's ordinary handling.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLScalarType, Undefined
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter

if TYPE_CHECKING:
    from graphql import GraphQLField

SourceT = TypeVar("SourceT")
ValueT = TypeVar("ValueT")

_PLAIN = "_medrec_plain_resolver"


def plain_resolver(method: Callable[[SourceT], ValueT]) -> Callable[[SourceT], ValueT]:
    """Marks a resolver that computes a leaf from its object alone: synchronous, with no
    arguments and no info. The executor may call it like an attribute read."""
    setattr(method, _PLAIN, True)
    return method


class Leaf(NamedTuple):
    read: Callable[[Any], Any]
    coerce: Callable[[Any], Any]
    nullable: bool


# One entry per field definition of the process's schemas, keyed by identity (GraphQLField
# defines __eq__ and so is not hashable); the definitions live as long as the process.
_LEAVES: dict[int, tuple[GraphQLField, Leaf | None]] = {}


def leaf_of(field_def: GraphQLField) -> Leaf | None:
    """How to read a field without resolve info, when it is a plain leaf of its object."""
    entry = _LEAVES.get(id(field_def))
    if entry is None:
        entry = _LEAVES[id(field_def)] = (field_def, _leaf_of(field_def))
    return entry[1]


def plain_reader(field_def: GraphQLField) -> Callable[[Any], Any] | None:
    """A reader for fields that only read their object, with no arguments, whatever their type."""
    resolve = field_def.resolve
    if resolve is None or field_def.args:
        return None
    strawberry_field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    # Strawberry marks the resolvers of fields that only read an attribute, with no arguments,
    # permissions or extensions; they ignore their info argument.
    if getattr(resolve, "_is_default", False):
        if getattr(strawberry_field, "default_resolver", None) is getattr:
            return attrgetter(strawberry_field.python_name)  # type: ignore[union-attr]
        return lambda source: resolve(source, None)
    resolver = getattr(strawberry_field, "base_resolver", None)
    if (
        resolver is not None
        and getattr(resolver.wrapped_func, _PLAIN, False)
        and not strawberry_field.extensions  # type: ignore[union-attr]
    ):
        method: Callable[[Any], Any] = resolver.wrapped_func
        return method
    return None


def _leaf_of(field_def: GraphQLField) -> Leaf | None:
    read = plain_reader(field_def)
    if read is None:
        return None
    nullable = not isinstance(field_def.type, GraphQLNonNull)
    named = field_def.type if nullable else field_def.type.of_type  # type: ignore[union-attr]
    if not isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return None
    return Leaf(read=read, coerce=output_coercer(named), nullable=nullable)


# Per named type of the process's schemas, keyed by identity like _LEAVES.
_COERCERS: dict[int, tuple[GraphQLScalarType | GraphQLEnumType, Callable[[Any], Any]]] = {}


def output_coercer(named: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """Serializes a leaf value; Strawberry's enum types search their values for every member."""
    entry = _COERCERS.get(id(named))
    if entry is None:
        entry = _COERCERS[id(named)] = (named, _coercer_of(named))
    return entry[1]


def _coercer_of(named: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    if not isinstance(named, CustomGraphQLEnumType):
        return named.coerce_output_value
    members_of: type[Any] = named.wrapped_cls
    members: dict[Any, str] = {}
    for name, value in named.values.items():  # the first name wins, as in Strawberry's search
        for member in members_of:
            if member.value == value.value:
                members.setdefault(member, name)
    coerce = named.coerce_output_value

    def coerce_member(value: Any) -> Any:
        return members[value] if type(value) is members_of else coerce(value)

    return coerce_member


ORDINARY = object()  # the leaf needs graphql-core's own handling (a null or an error)


def leaf_value(leaf: Leaf, source: Any) -> Any:
    try:
        value = leaf.read(source)
        if value is None:
            return None if leaf.nullable else ORDINARY
        coerced = leaf.coerce(value)
    except Exception:
        return ORDINARY
    return ORDINARY if coerced is None or coerced is Undefined else coerced
