"""Break-glass grants: emergency read access of one caller to one patient's records.

Who reads what under a grant is an access rule (app/domain/access.py); these are the rules of
asking for one.
"""

from __future__ import annotations

from typing import Final

from app.domain import validation
from app.domain.errors import BadUserInput

REASON_MIN: Final = 10
MINUTES_MIN: Final = 1
MINUTES_MAX: Final = 240
MINUTES_DEFAULT: Final = 60


def reason(value: str, field: str) -> str:
    """Why normal access is not enough, in at least ``REASON_MIN`` characters after trimming."""
    cleaned = validation.text(value, field, max_length=validation.REASON_MAX, multiline=True)
    if len(cleaned) < REASON_MIN:
        raise BadUserInput(f"{field}: at least {REASON_MIN} characters saying why")
    return cleaned


def duration_minutes(value: int | None, field: str) -> int:
    if value is None:
        return MINUTES_DEFAULT
    if not MINUTES_MIN <= value <= MINUTES_MAX:
        raise BadUserInput(f"{field}: from {MINUTES_MIN} to {MINUTES_MAX} minutes")
    return value
