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
# The values are not echoed: they may be patient data, and the database's text quotes them.
INPUT_REFUSED = "a value of the input is out of range or cannot be stored"

# The database, its connection pool or the network to it failed: the caller may retry. Statements
# run on the driver (app/data/database.py's DriverStatement) raise asyncpg's errors, unwrapped.
DATABASE_OUTAGES = (
    DBAPIError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    PoolTimeout,
    OSError,
    TimeoutError,
)


# SQLSTATE classes of a statement refused for the values it was given: data exceptions (22), and
# integrity violations (23) that no command turned into a CONFLICT.
_REFUSED_INPUT_CLASSES = frozenset({"22", "23"})


def refused_input(error: BaseException) -> BaseException | None:
    """The driver's error when ``error`` is a statement refused for its values, else None.

    Found as raised on the driver (app/data/database.py's DriverStatement) or wrapped by SQLAlchemy
    (``orig``, whose cause is asyncpg's). Only that statement failed: the connection is sound.
    """
    seen: BaseException | None = error
    for _ in range(3):
        if seen is None:
            return None
        if isinstance(seen, asyncpg.PostgresError):
            state = seen.sqlstate or ""
            return seen if state[:2] in _REFUSED_INPUT_CLASSES else None
        if isinstance(seen, asyncpg.InterfaceError) and isinstance(seen, ValueError):
            # asyncpg's DataError: a parameter it could not encode, refused before sending.
            return seen
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) else seen.__cause__
    return None


def is_database_outage(error: BaseException) -> bool:
    return isinstance(error, DATABASE_OUTAGES) and refused_input(error) is None


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
