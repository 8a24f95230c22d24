"""schema/strawberry_adapter.py: each private part of Strawberry medrec relies on still means what
the adapter says, so a Strawberry release that changes one fails here first."""

from __future__ import annotations

from graphql import GraphQLSchema, parse
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from schema.schema import build_schema
from schema.strawberry_adapter import (
    graphql_schema,
    handles_exceptions,
    provided_operation_name,
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


def test_the_provided_operation_name_is_the_requests_not_the_first_operations() -> None:
    query = "query First { __typename } query Second { __typename }"

    def context(name: str | None) -> ExecutionContext:
        return ExecutionContext(
            query=query,
            schema=SCHEMA,
            allowed_operations=(OperationType.QUERY,),
            provided_operation_name=name,
            graphql_document=parse(query),
        )

    assert provided_operation_name(context(None)) is None
    assert provided_operation_name(context("Second")) == "Second"
