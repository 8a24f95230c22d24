"""Appends the audit row of every operation that was not audited inside its own transaction, and
of every event a subscription delivers (schema/pipeline.py calls these once per operation and
once per event)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from graphql import FieldNode, GraphQLError

from app.domain.errors import DATABASE_UNAVAILABLE, ErrorCode, is_database_outage
from models.enums import AuditOutcome

if TYPE_CHECKING:
    from graphql import OperationDefinitionNode
    from strawberry.types import ExecutionResult

    from resolvers.context import RequestContext

log = logging.getLogger("medrec.audit")

_DENIED = {ErrorCode.UNAUTHENTICATED.value, ErrorCode.FORBIDDEN.value}


def touches_data(operation: OperationDefinitionNode) -> bool:
    """Introspection reads no patient data: an operation selecting only ``__schema``,
    ``__type`` or ``__typename`` at its root is not audited."""
    return any(
        not isinstance(selection, FieldNode) or not selection.name.value.startswith("__")
        for selection in operation.selection_set.selections
    )


async def append_operation_row(context: RequestContext, result: ExecutionResult) -> None:
    """Appends the row of an operation that touched data, unless it was audited inside its own
    transaction, and returns once it committed. If it cannot be appended, ``result`` loses its
    data: unaudited access to patient data must not happen."""
    trail = context.audit
    # Mutations audited themselves; a row is still due for data a mutation's response read after
    # its transaction.
    if trail.appended_in_transaction and not result.errors and not trail.touched_anything:
        return
    await _append(context, result)


async def append_delivery_row(context: RequestContext, result: ExecutionResult) -> bool:
    """Appends the row of a subscription event once its whole selection ran, so it names every
    patient and record the payload holds however nested, and before it is sent; on failure the
    event loses its data, as an operation's result does (and False is returned)."""
    appended = await _append(context, result)
    if appended:
        context.audit.appended()
    return appended


async def _append(context: RequestContext, result: ExecutionResult) -> bool:
    try:
        await context.audit_writer.append(context.audit.event(_outcome(result.errors or [])))
    except Exception as error:
        # The type only: a database error's text quotes the statement and its values.
        log.error(
            "audit append failed with %s (request %s)", type(error).__name__, context.request_id
        )
        database_down = is_database_outage(error)
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
        return False
    return True


def _outcome(errors: list[GraphQLError]) -> AuditOutcome:
    if not errors:
        return AuditOutcome.OK
    codes = {(error.extensions or {}).get("code") for error in errors}
    return AuditOutcome.DENIED if codes & _DENIED else AuditOutcome.ERROR
