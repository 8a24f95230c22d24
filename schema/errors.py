"""Every error leaves with one of the contract's codes, and unexpected ones leave with nothing else.

An unexpected exception is logged with the request id and replaced by a bare
``INTERNAL_SERVER_ERROR``, so no stack trace, SQL or row data can reach a caller.
"""

from __future__ import annotations

import logging
import traceback

from graphql import GraphQLError

from app.domain.errors import (
    DATABASE_UNAVAILABLE,
    INPUT_REFUSED,
    ApiError,
    ErrorCode,
    is_database_outage,
    refused_input,
)

log = logging.getLogger("medrec.errors")


def with_codes(errors: list[GraphQLError], request_id: str | None) -> list[GraphQLError]:
    """``errors`` as they leave: each with a contract code, unexpected ones with nothing else."""
    return [coded(error, request_id) for error in errors]


def coded(error: GraphQLError, request_id: str | None) -> GraphQLError:
    original = error.original_error
    if original is None and "code" in (error.extensions or {}):
        return error  # made with its code (``unexpected``)
    if isinstance(original, ApiError):
        return _with_code(error, original.message, original.code, original.extensions)
    refusal = None if original is None else refused_input(original)
    if refusal is not None:
        # A value no check caught before the statement: the input was wrong, the database is
        # fine. The type and SQLSTATE tell operators which check is missing; values stay out.
        log.warning(
            "database refused a value: %s (SQLSTATE %s) in %s (request %s)",
            type(refusal).__name__,
            getattr(refusal, "sqlstate", None),
            ".".join(map(str, error.path or ())),
            request_id,
        )
        return _with_code(error, INPUT_REFUSED, ErrorCode.BAD_USER_INPUT)
    if original is not None and is_database_outage(original):
        # The database (or the network to it) failed; say so, and nothing more.
        return _with_code(
            error,
            DATABASE_UNAVAILABLE,
            ErrorCode.INTERNAL_SERVER_ERROR,
            {"requestId": request_id},
        )
    if error.path is None:
        # No field was executing: a parse or validation error, or a variable or literal the
        # schema refused (scalars' messages included). What the client sent was wrong.
        return _with_code(error, error.message, ErrorCode.BAD_USER_INPUT)
    return unexpected(original, request_id, error)


def unexpected(
    original: BaseException | None, request_id: str | None, error: GraphQLError | None = None
) -> GraphQLError:
    """A bare ``INTERNAL_SERVER_ERROR`` for an exception nobody expected, logged here with its
    type, where it happened and its frames."""
    where = ".".join(map(str, error.path or ())) if error is not None else "the operation"
    # The exception's text is left out: database errors quote the values (an MRN, a name)
    # and the SQL. Its type and the frames say where to look; the request id says when.
    frames = "".join(traceback.format_tb(original.__traceback__)) if original else ""
    log.error(
        "unexpected %s in %s (request %s)\n%s", type(original).__name__, where, request_id, frames
    )
    return GraphQLError(
        "Internal server error",
        nodes=error.nodes if error else None,
        source=error.source if error else None,
        positions=error.positions if error else None,
        path=error.path if error else None,
        extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR.value, "requestId": request_id},
    )


def _with_code(
    error: GraphQLError, message: str, code: ErrorCode, more: dict[str, object] | None = None
) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={**(error.extensions or {}), **(more or {}), "code": code.value},
    )
