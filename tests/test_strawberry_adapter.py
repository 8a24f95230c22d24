"""schema/strawberry_adapter.py: each private part of Strawberry medrec relies on still means what
the adapter says, so a Strawberry release that changes one fails here first."""

from __future__ import annotations

from graphql import GraphQLSchema

from schema.schema import build_schema
from schema.strawberry_adapter import (
    graphql_schema,
    handles_exceptions,
    strawberry_schema,
)

SCHEMA = build_schema()


def test_the_graphql_core_schema_is_the_one_strawberry_built_and_points_back() -> None:
    built = graphql_schema(SCHEMA)
    assert isinstance(built, GraphQLSchema)
    assert built.query_type is not None
    assert built.query_type.name == "Query"
    assert strawberry_schema(built) is SCHEMA


def test_the_served_schema_has_no_exception_handlers() -> None:
    assert handles_exceptions(SCHEMA.schema_converter) is False
