"""Appends the audit row of every operation that was not audited inside its own transaction."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from graphql import FieldNode, GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from app.errors import DATABASE_UNAVAILABLE, ErrorCode, is_database_outage
from models.enums import AuditOutcome

if TYPE_CHECKING:
    from strawberry.schema._graphql_core import GraphQLExecutionResult
    from strawberry.types import ExecutionResult

    from app.context import RequestContext

log = logging.getLogger("medrec.audit")

_DENIED = {ErrorCode.UNAUTHENTICATED.value, ErrorCode.FORBIDDEN.value}


class AuditTrailExtension(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        execution_context = self.execution_context
        context: RequestContext = execution_context.context
        context.audit.describe_operation(
            execution_context.operation_name,
            execution_context.operation_type.value,
            execution_context.query,
        )
        yield

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        if self._touches_data():
            await append_operation_row(
                self.execution_context.context, self.execution_context.result
            )

    def _touches_data(self) -> bool:
        """Introspection, and documents that never parsed, read no patient data."""
        document = self.execution_context.graphql_document
        if document is None:
            return False
        name = self.execution_context.operation_name
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            if name is not None and (definition.name is None or definition.name.value != name):
                continue
            return any(
                not isinstance(selection, FieldNode) or not selection.name.value.startswith("__")
                for selection in definition.selection_set.selections
            )
        return False


async def append_operation_row(
    context: RequestContext, result: GraphQLExecutionResult | ExecutionResult | None
) -> None:
    """Appends the row of an operation that touched data, unless it was audited inside its own
    transaction, and returns once it committed. If it cannot be appended, ``result`` loses its
    data: unaudited access to patient data must not happen."""
    errors = (result.errors if result else None) or []
    trail = context.audit
    # Mutations audited themselves; a row is still due for data a mutation's response read after
    # its transaction.
    if trail.appended_in_transaction and not errors and not trail.touched_anything:
        return
    try:
        await context.audit_writer.append(trail.event(_outcome(errors)))
    except Exception as error:
        # The type only: a database error's text quotes the statement and its values.
        log.error(
            "audit append failed with %s (request %s)", type(error).__name__, context.request_id
        )
        database_down = is_database_outage(error)
        # The response goes, the data not.
        if result is not None:
            result.data = None
            result.errors = [
                GraphQLError(
                    DATABASE_UNAVAILABLE if database_down else "Internal server error",
                    extensions={
                        "code": ErrorCode.INTERNAL_SERVER_ERROR.value,
                        "requestId": context.request_id,
                    },
                )
            ]


def _outcome(errors: list[GraphQLError]) -> AuditOutcome:
    if not errors:
        return AuditOutcome.OK
    codes = {(error.extensions or {}).get("code") for error in errors}
    return AuditOutcome.DENIED if codes & _DENIED else AuditOutcome.ERROR
