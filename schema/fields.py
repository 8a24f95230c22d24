"""Each field of a row type, declared once: the column it shows or the relation it follows.

Who may read a column is an access rule, in the SQL that fetches it (app/domain/access.py's
``readable_columns``): a role that may not read it gets null on every path.

The declaration rides on the Strawberry field (its public ``metadata``). The objects made from
rows (``values_from_row``), the one-statement trees (schema/sql_trees.py), a page's prefetch of
its relations (``relations_of``) and the cost estimate (schema/limits.py) read it; nothing is
inferred from Python names. A field declaring neither is computed by its resolver, and the trees
leave a selection of it to the DataLoaders (tests/api/test_field_declarations.py lists them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.schema.name_converter import NameConverter
from strawberry.types import get_object_definition

if TYPE_CHECKING:
    from strawberry.types.field import StrawberryField

    from app.data.repositories.json_trees import Relation
    from app.domain.opaque_ids import NodeType

_COLUMN = "medrec.column"
_RELATION = "medrec.relation"


@dataclass(frozen=True, slots=True)
class Column:
    """A field that shows one column of its type's table."""

    name: str
    # A column of uuids shown as a list of ids: the type of the nodes they are.
    ids_of: NodeType | None = None


def column(
    name: str,
    *,
    description: str | None = None,
    graphql_name: str | None = None,
    ids_of: NodeType | None = None,
) -> Any:
    """A field showing column ``name`` (with ``ids_of``, a uuid array as those nodes' ids)."""
    return strawberry.field(
        name=graphql_name, description=description, metadata={_COLUMN: Column(name, ids_of)}
    )


def column_metadata(name: str) -> dict[str, Column]:
    """The declaration of a field with a resolver of its own that shows column ``name`` as it
    is (``Node.id``, sealed only when selected)."""
    return {_COLUMN: Column(name)}


@dataclass(frozen=True, slots=True)
class Follows:
    """A field that follows a relation to rows of another table."""

    relation: Relation
    # A list read without `first`: the most rows it can hold (the writes keep it), which the
    # cost estimate counts (schema/limits.py).
    most: int | None = None


def relation_metadata(relation: Relation, *, most: int | None = None) -> dict[str, Follows]:
    """The declaration of a field following ``relation`` (app/data/repositories/json_trees.py
    defines its keys)."""
    return {_RELATION: Follows(relation, most)}


def declared_column(field: StrawberryField) -> Column | None:
    declared: Column | None = field.metadata.get(_COLUMN)
    return declared


def declared_relation(field: StrawberryField) -> Follows | None:
    declared: Follows | None = field.metadata.get(_RELATION)
    return declared


@functools.cache
def relations_of(cls: type) -> dict[str, Relation]:
    """The relations ``cls``'s fields follow, by the fields' GraphQL names."""
    definition = get_object_definition(cls, strict=True)
    converter = NameConverter()  # the schema's config keeps Strawberry's default names
    return {
        converter.get_graphql_name(field): declared.relation
        for field in definition.fields
        if (declared := declared_relation(field)) is not None
    }


@functools.cache
def _columns_of(cls: type) -> tuple[tuple[str, Column], ...]:
    definition = get_object_definition(cls, strict=True)
    return tuple(
        (field.python_name, declared)
        for field in definition.fields
        if (declared := declared_column(field)) is not None and field.base_resolver is None
    )


def values_from_row(cls: type, row: Any) -> dict[str, Any]:
    """The declared column fields of ``cls``, from ``row``."""
    return {python_name: getattr(row, declared.name) for python_name, declared in _columns_of(cls)}
