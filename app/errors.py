"""Errors the API reports to callers, each with one of the contract's ``extensions.code`` values.

Raised by GraphQL-independent code too; the GraphQL layer turns them into error entries. Messages
describe what was wrong with the input and must never carry row data, SQL or tokens.
"""

from __future__ import annotations

import enum

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

DATABASE_UNAVAILABLE = "the database is unavailable; retry shortly"

# The database, its connection pool or the network to it failed: the caller may retry. Statements
# run on the driver (app/database.py's DriverStatement) raise asyncpg's errors, unwrapped.
DATABASE_OUTAGES = (
    DBAPIError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    PoolTimeout,
    OSError,
    TimeoutError,
)


class ErrorCode(enum.StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class ApiError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, object]:
        """More for the error's `extensions`, beside its code."""
        return {}


class Unauthenticated(ApiError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(ApiError):
    code = ErrorCode.FORBIDDEN


class NotFound(ApiError):
    code = ErrorCode.NOT_FOUND


class BadUserInput(ApiError):
    code = ErrorCode.BAD_USER_INPUT


class Conflict(ApiError):
    code = ErrorCode.CONFLICT


class InvalidTransition(ApiError):
    code = ErrorCode.INVALID_TRANSITION


class RateLimited(ApiError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, round(retry_after + 0.5))
        super().__init__(f"too many requests; retry after {self.retry_after} seconds")

    @property
    def extensions(self) -> dict[str, object]:
        return {"retryAfter": self.retry_after}


class ServiceUnavailable(ApiError):
    """A dependency (database, object store) is down; the caller may retry shortly."""

    code = ErrorCode.INTERNAL_SERVER_ERROR
