"""The private parts of Strawberry medrec relies on, each behind a function saying why.

Everything else medrec takes from Strawberry and graphql-core is their public API; a Strawberry
release that changes one of these breaks only this module (tests/test_strawberry_adapter.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphql import GraphQLSchema
    from strawberry import Schema
    from strawberry.schema.schema_converter import GraphQLCoreConverter


def graphql_schema(schema: Schema) -> GraphQLSchema:
    """The graphql-core schema Strawberry built, which the pipeline validates, coerces, costs
    and executes against directly; Strawberry keeps no public handle on it."""
    built: GraphQLSchema = schema._schema
    return built


def strawberry_schema(schema: GraphQLSchema) -> Schema:
    """The Strawberry schema a graphql-core one was built by (Strawberry sets this
    back-reference when it builds it): the plan converts arguments with its converter."""
    owner: Schema = schema._strawberry_schema  # type: ignore[attr-defined]
    return owner


def handles_exceptions(converter: GraphQLCoreConverter) -> bool:
    """Whether the schema turns some exceptions into results (Strawberry's exception
    handlers, which its converter keeps privately): the plan, which calls the resolvers itself,
    would skip them."""
    return bool(getattr(converter, "_exception_handler_specs", None))
