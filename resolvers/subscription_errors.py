"""What a subscriber is told when its stream fails: the subscription resolver and the delivery
audit (schema/audit.py) both end streams with it."""

from __future__ import annotations

import logging
import traceback

from app.domain.errors import (
    DATABASE_UNAVAILABLE,
    INPUT_REFUSED,
    ApiError,
    BadUserInput,
    ErrorCode,
    is_database_outage,
    refused_input,
)

log = logging.getLogger("medrec.subscriptions")


class _InternalError(ApiError):
    """What a subscriber is told when its stream fails: a message of ours and the request id."""

    code = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, request_id: str) -> None:
        super().__init__(message)
        self.request_id = request_id

    @property
    def extensions(self) -> dict[str, object]:
        return {"requestId": self.request_id}


def masked(error: Exception, request_id: str) -> ApiError:
    """What a subscriber is told when its stream fails with ``error``; logged here."""
    # The type only: a database error's text quotes the statement and its values.
    refusal = refused_input(error)
    if refusal is not None:
        log.warning(
            "subscription ended: database refused a value: %s (SQLSTATE %s, request %s)",
            type(refusal).__name__,
            getattr(refusal, "sqlstate", None),
            request_id,
        )
        return BadUserInput(INPUT_REFUSED)
    if is_database_outage(error):
        log.error(
            "subscription ended: database unavailable (%s, request %s)",
            type(error).__name__,
            request_id,
        )
        return _InternalError(DATABASE_UNAVAILABLE, request_id)
    log.error(
        "unexpected %s in a subscription (request %s)\n%s",
        type(error).__name__,
        request_id,
        "".join(traceback.format_tb(error.__traceback__)),
    )
    return _InternalError("Internal server error", request_id)
