"""Builds the ``strawberry.Schema``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules
from strawberry.schema.config import StrawberryConfig

from schema import types
from schema.audit import AuditTrailExtension, DeliveryAudit
from schema.errors import ErrorCodes
from schema.execution import LeafShortcutExecutionContext
from schema.extension_hooks import CachedHooksRunner
from schema.limits import QueryLimits
from schema.mutation import Mutation
from schema.query import Query
from schema.scalars import SCALARS
from schema.subscription import Subscription

if TYPE_CHECKING:
    from graphql import GraphQLError
    from strawberry.extensions import SchemaExtension
    from strawberry.extensions.runner import SchemaExtensionsRunner
    from strawberry.types import ExecutionContext


class MedrecSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Strawberry would log each error with the query text; queries can quote patient data.

        Unexpected errors are logged, without the query, by the ErrorCodes extension.
        """

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return CachedHooksRunner(execution_context=execution_context, extensions=extensions)


def build_schema(*, introspection: bool = True) -> strawberry.Schema:
    """``introspection=False`` refuses ``__schema``/``__type`` (production may hide the schema)."""
    hide_schema: list[Any] = (
        [] if introspection else [lambda: AddValidationRules([NoSchemaIntrospectionCustomRule])]
    )
    return MedrecSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # Types reachable only through the Node interface must still be in the schema.
        types=[types.Diagnosis, types.Attachment],
        # Listed first, so it runs after ErrorCodes has given every error its code. DeliveryAudit
        # hooks in before each subscription result is sent: after ErrorCodes, so it reads codes.
        # QueryLimits (which also caches parsed and validated documents) comes after ErrorCodes,
        # see schema/limits.py; its validation rules are built once per process, so its caches
        # keep hitting.
        extensions=[
            AuditTrailExtension,
            ErrorCodes,
            DeliveryAudit,
            QueryLimits,
            *hide_schema,
        ],
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=LeafShortcutExecutionContext,
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
