"""Builds the ``strawberry.Schema``, whose operations all run through schema/pipeline.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, cast

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.types.graphql import OperationType

from schema import types
from schema.execution import LeafShortcutExecutionContext
from schema.mutation import Mutation
from schema.pipeline import OperationPipeline
from schema.query import Query
from schema.scalars import SCALARS
from schema.subscription import Subscription

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterable

    from strawberry.types import ExecutionResult

    from resolvers.context import RequestContext

_EVERY_TYPE = frozenset(OperationType)


class MedrecSchema(strawberry.Schema):
    """Strawberry's schema, whose HTTP view and WebSocket handlers call ``execute`` and
    ``stream``: both go to the one pipeline, in place of Strawberry's extension-driven one."""

    def __init__(self, *, introspection: bool, **kwargs: Any) -> None:
        if kwargs.get("extensions"):
            # The pipeline would never run them: a step of its own belongs in the pipeline.
            raise TypeError("schema extensions do not run in medrec: add a step to the pipeline")
        super().__init__(**kwargs)
        self.pipeline = OperationPipeline(self, introspection=introspection)

    async def execute(  # Strawberry's signature
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        return await self.pipeline.execute(
            query,
            variable_values,
            cast("RequestContext", context_value),
            operation_name,
            _EVERY_TYPE if allowed_operation_types is None else allowed_operation_types,
        )

    async def stream(  # Strawberry's signature
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> AsyncGenerator[ExecutionResult, None]:
        return self.pipeline.stream(
            query,
            variable_values,
            cast("RequestContext", context_value),
            operation_name,
            _EVERY_TYPE if allowed_operation_types is None else allowed_operation_types,
        )

    def execute_sync(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Every operation is asynchronous (the database driver is); there is no second,
        synchronous pipeline."""
        raise NotImplementedError("medrec executes operations with `execute` or `stream`")


def build_schema(*, introspection: bool = True) -> MedrecSchema:
    """``introspection=False`` refuses ``__schema``/``__type`` (production may hide the schema)."""
    return MedrecSchema(
        introspection=introspection,
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # Types reachable only through the Node interface must still be in the schema.
        types=[types.Diagnosis, types.Attachment],
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=LeafShortcutExecutionContext,
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
