"""Appends the audit row of every operation that was not audited inside its own transaction, and
of every event a subscription delivers."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from graphql import FieldNode, GraphQLError, OperationDefinitionNode
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.domain.audit import AuditTrail
from app.domain.errors import DATABASE_UNAVAILABLE, ErrorCode, is_database_outage
from models.enums import AuditOutcome

if TYPE_CHECKING:
    from graphql import ExecutionResult as GraphQLExecutionResult
    from graphql import InitialIncrementalExecutionResult
    from strawberry.types import ExecutionResult
    from strawberry.types.execution import StreamExecutionResult

    from resolvers.context import RequestContext

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
        context: RequestContext = self.execution_context.context
        if isinstance(context.request, WebSocket):
            # A WebSocket's operations run concurrently with one context from Strawberry: each
            # gets its own trail (and loaders noting into it), so a row names only its own reads.
            self.execution_context.context = _own_trail(context)
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


class DeliveryAudit(SchemaExtension):
    """Appends the row of each event a subscription delivers once the event's whole selection
    ran, so it names every patient and record the payload holds however nested, and before it is
    sent. Listed after ErrorCodes, so the outcome reads the errors' codes."""

    async def on_stream_result(self, result: StreamExecutionResult) -> AsyncIterator[None]:
        execution_context = self.execution_context
        # Other results are no event: the operation's own row covers them (AuditTrailExtension).
        if (
            getattr(result, "data", None) is not None
            and execution_context.operation_type is OperationType.SUBSCRIPTION
        ):
            await _append_delivery_row(execution_context.context, result)
        yield


async def _append_delivery_row(context: RequestContext, result: StreamExecutionResult) -> None:
    errors: list[GraphQLError] = getattr(result, "errors", None) or []
    try:
        await context.audit_writer.append(context.audit.event(_outcome(errors)))
    except Exception as error:
        # Imported here: the subscription resolvers import the schema's types.
        from resolvers.subscriptions import masked

        # Raised to Strawberry, which sends it instead of the event and ends the stream.
        raise masked(error, context.request_id) from None
    context.audit.appended()


def _own_trail(context: RequestContext) -> RequestContext:
    """``context`` with an audit trail, loaders and per-operation caches of its own."""
    # Imported here: the loaders import the schema's types.
    from resolvers.loaders import Loaders

    audit = AuditTrail(
        request_id=context.request_id,
        client_address=context.audit.client_address,
        viewer=context.viewer,
    )
    return dataclasses.replace(
        context,
        audit=audit,
        loaders=Loaders(context.reads, context.viewer, context.ids, audit),
        node_selections={},
        _closing=None,
    )


async def append_operation_row(
    context: RequestContext,
    result: GraphQLExecutionResult | InitialIncrementalExecutionResult | ExecutionResult | None,
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
