"""Checks on mutation input, independent of GraphQL.

Every function takes the path the caller used for the value (``input.prescriptions[2].dosage``)
and raises :class:`BadUserInput` with a message that starts with that path. Messages describe the
expected shape only and never echo the rejected value: it may be patient data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from typing import Any, Final, NamedTuple, NoReturn

import langcodes

from app.domain.errors import BadUserInput

# Column lengths in models/tables.py.
NAME_MAX: Final = 100
SPECIALTY_MAX: Final = 100
EMAIL_MAX: Final = 254
PHONE_MAX: Final = 32
# RFC 5646 section 4.4.1: 35 characters hold every tag of a language, script and region.
LANGUAGE_TAG_MAX: Final = 35
MRN_MAX: Final = 64
COGNITO_SUB_MAX: Final = 128
NPI_LENGTH: Final = 10
ICD10_MAX: Final = 8
DIAGNOSIS_DESCRIPTION_MAX: Final = 500
CHIEF_COMPLAINT_MAX: Final = 500
REASON_MAX: Final = 1000
# The notes column is unbounded TEXT; this keeps one request from storing megabytes.
NOTES_MAX: Final = 20_000

# Items of the JSONB columns medical_records.prescriptions and medical_records.lab_results.
PRESCRIPTIONS_MAX: Final = 50
MEDICATION_MAX: Final = 200
DOSAGE_MAX: Final = 100
FREQUENCY_MAX: Final = 100
DURATION_DAYS_MIN: Final = 1
DURATION_DAYS_MAX: Final = 3650
PRESCRIPTION_NOTES_MAX: Final = 1000
LAB_RESULTS_MAX: Final = 200
LAB_TEST_MAX: Final = 200
LAB_VALUE_MAX: Final = 200
LAB_UNIT_MAX: Final = 50
REFERENCE_RANGE_MAX: Final = 100

# PostgreSQL's bigint, the widest integer column; GraphQL's Int is 32 bits, but cursors carry ids.
BIGINT_MIN: Final = -(2**63)
BIGINT_MAX: Final = 2**63 - 1

EARLIEST_DATE: Final = date(1900, 1, 1)
# Clients in time zones ahead of the server, and clocks a little fast, send "today" as tomorrow.
VISIT_DATE_FUTURE_LEEWAY: Final = timedelta(days=1)
FOLLOW_UP_MAX_YEARS: Final = 5

_EARLIEST_INSTANT: Final = datetime(1900, 1, 1, tzinfo=UTC)
# Cc (C0, DEL, C1) and lone surrogates, which PostgreSQL cannot store as UTF-8.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_EXCEPT_TAB_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NPI = re.compile(r"[0-9]{10}")
_NPI_PREFIX: Final = "80840"
_ICD10 = re.compile(r"[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?")
_PHONE = re.compile(r"\+?[0-9 ().\-]+")
_PHONE_DIGITS_MIN: Final = 7
_PHONE_DIGITS_MAX: Final = 15
_MRN = re.compile(r"[A-Za-z0-9-]+")


def _fail(field: str, problem: str) -> NoReturn:
    raise BadUserInput(f"{field}: {problem}")


# --- free text ---------------------------------------------------------------------------------


def text(
    value: str, field: str, *, max_length: int, required: bool = True, multiline: bool = False
) -> str:
    """The value without surrounding whitespace; ``multiline`` allows tabs and line breaks."""
    cleaned = value.strip()
    if multiline:
        # Browsers and Windows clipboards send CRLF; one line-break convention is stored.
        cleaned = cleaned.replace("\r\n", "\n").replace("\r", "\n")
    if required and not cleaned:
        _fail(field, "must not be empty")
    if len(cleaned) > max_length:
        _fail(field, f"at most {max_length} characters")
    if multiline and _CONTROL_EXCEPT_TAB_NEWLINE.search(cleaned):
        _fail(field, "must not contain control characters other than tabs and line breaks")
    if not multiline and _CONTROL.search(cleaned):
        _fail(field, "must not contain control characters or line breaks")
    return cleaned


def optional_text(
    value: str | None, field: str, *, max_length: int, multiline: bool = False
) -> str | None:
    """Like :func:`text`, but None and blank values come back as None."""
    if value is None:
        return None
    cleaned = text(value, field, max_length=max_length, required=False, multiline=multiline)
    return cleaned or None


def reason(value: str | None, field: str, *, required: bool) -> str | None:
    cleaned = optional_text(value, field, max_length=REASON_MAX, multiline=True)
    if required and cleaned is None:
        _fail(field, "is required")
    return cleaned


def storable_text(value: str, field: str) -> str:
    """The value as it is, refused if PostgreSQL's text cannot hold it: NUL, or a lone surrogate
    (which has no UTF-8 encoding)."""
    if _UNSTORABLE.search(value):
        _fail(field, "must not contain NUL characters or unpaired surrogates")
    return value


# --- identifiers and contact details -----------------------------------------------------------


def _stripped(value: str, field: str) -> str:
    cleaned = value.strip()
    if not cleaned:
        _fail(field, "must not be empty")
    return cleaned


def _at_most(value: str, field: str, max_length: int) -> None:
    if len(value) > max_length:
        _fail(field, f"at most {max_length} characters")


def _luhn_check_digit(payload: str) -> int:
    total = 0
    # Walking from the right, the digit next to the (absent) check digit is doubled.
    for position, char in enumerate(reversed(payload)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10


def _has_npi_check_digit(digits: str) -> bool:
    # CMS: the Luhn digit is computed as if the 9 digits followed the card-issuer prefix 80840.
    return _luhn_check_digit(_NPI_PREFIX + digits[:9]) == int(digits[9])


def npi(value: str, field: str) -> str:
    cleaned = _stripped(value, field)
    if not _NPI.fullmatch(cleaned) or not _has_npi_check_digit(cleaned):
        _fail(field, "must be 10 digits with a valid check digit")
    return cleaned


def icd10(value: str, field: str) -> str:
    cleaned = _stripped(value, field)
    # isascii first: str.upper maps some non-ASCII letters onto ASCII ones (dotless i -> "I").
    if not cleaned.isascii() or not _ICD10.fullmatch(cleaned.upper()):
        _fail(field, "must be an ICD-10 code such as E11.9, I10 or S72.001A")
    return cleaned.upper()


def email(value: str, field: str) -> str:
    cleaned = _stripped(value, field)
    _at_most(cleaned, field, EMAIL_MAX)
    local, _, domain = cleaned.partition("@")
    if (
        cleaned.count("@") != 1
        or not local
        or not _is_domain(domain)
        or _WHITESPACE_OR_CONTROL.search(cleaned)
    ):
        _fail(field, "must be an email address such as name@example.com")
    # Only the domain is case-insensitive; the local part belongs to the mail server.
    return f"{local}@{domain.lower()}"


def _is_domain(value: str) -> bool:
    labels = value.split(".")
    return len(labels) >= 2 and all(labels)


def phone(value: str, field: str) -> str:
    cleaned = _stripped(value, field)
    _at_most(cleaned, field, PHONE_MAX)
    digits = sum(char.isascii() and char.isdigit() for char in cleaned)
    if not _PHONE.fullmatch(cleaned) or not _PHONE_DIGITS_MIN <= digits <= _PHONE_DIGITS_MAX:
        _fail(
            field,
            f"must be a phone number of {_PHONE_DIGITS_MIN} to {_PHONE_DIGITS_MAX} digits, "
            "optionally starting with + and separated by spaces, dashes, dots or parentheses",
        )
    return cleaned


def language_tag(value: str, field: str) -> str:
    """A BCP 47 tag of registered subtags, stored in its canonical form (``en-us`` as ``en-US``,
    deprecated codes by their replacements)."""
    cleaned = _stripped(value, field)
    _at_most(cleaned, field, LANGUAGE_TAG_MAX)
    if not cleaned.isascii() or not langcodes.tag_is_valid(cleaned):
        _fail(field, "must be a BCP 47 language tag such as en, es-MX or zh-Hant")
    tag: str = langcodes.standardize_tag(cleaned)
    return tag


def mrn(value: str, field: str) -> str:
    cleaned = _stripped(value, field)
    _at_most(cleaned, field, MRN_MAX)
    if not _MRN.fullmatch(cleaned):
        _fail(field, "may contain only letters A-Z, digits and hyphens")
    return cleaned


def cognito_sub(value: str, field: str) -> str:
    cleaned = _stripped(value, field)
    _at_most(cleaned, field, COGNITO_SUB_MAX)
    if _WHITESPACE_OR_CONTROL.search(cleaned):
        _fail(field, "must not contain whitespace or control characters")
    return cleaned


def bigint(value: int, field: str) -> int:
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        _fail(field, "out of range")
    return value


# --- dates --------------------------------------------------------------------------------------


def date_of_birth(value: date, field: str, *, today: date) -> date:
    if value > today:
        _fail(field, "must not be in the future")
    if value < EARLIEST_DATE:
        _fail(field, f"must not be before {EARLIEST_DATE.isoformat()}")
    return value


def instant(value: datetime, field: str) -> datetime:
    """The instant in UTC. Every DateTime that reaches a statement passes here: near year 1 or
    9999 an offset can move it out of the years the driver can send (1 to 9999 in UTC)."""
    _require_offset(value, field)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        _fail(field, "out of range")


def visit_date(value: datetime, field: str, *, now: datetime) -> datetime:
    """The instant in UTC; ``now`` must be timezone-aware."""
    # Aware datetimes compare without converting, so the bounds are checked before instant().
    _require_offset(value, field)
    if value > now + VISIT_DATE_FUTURE_LEEWAY:
        _fail(field, "must not be more than 1 day in the future")
    if value < _EARLIEST_INSTANT:
        _fail(field, f"must not be before {EARLIEST_DATE.isoformat()}")
    return instant(value, field)


def _require_offset(value: datetime, field: str) -> None:
    if value.utcoffset() is None:
        _fail(field, "must include a UTC offset, e.g. 2026-11-23T10:15:00+00:00")


def follow_up_date(value: date, field: str, *, visit_date: date) -> date:
    if value < visit_date:
        _fail(field, "must not be before the visit date")
    if value > _years_later(visit_date, FOLLOW_UP_MAX_YEARS):
        _fail(field, f"must not be more than {FOLLOW_UP_MAX_YEARS} years after the visit date")
    return value


def _years_later(start: date, years: int) -> date:
    if start.year + years > MAXYEAR:
        return date.max
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February into a common year
        return start.replace(year=start.year + years, day=28)


# --- vital signs --------------------------------------------------------------------------------


class VitalSignRange(NamedTuple):
    low: int | float
    high: int | float
    whole: bool


# In the order of the VitalSignsInput fields, which is also the order of the stored dict.
VITAL_SIGN_RANGES: Final[Mapping[str, VitalSignRange]] = {
    "systolicBp": VitalSignRange(50, 300, whole=True),
    "diastolicBp": VitalSignRange(20, 200, whole=True),
    "heartRate": VitalSignRange(20, 300, whole=True),
    "respiratoryRate": VitalSignRange(4, 80, whole=True),
    "temperatureC": VitalSignRange(25, 45, whole=False),
    "oxygenSaturation": VitalSignRange(0, 100, whole=True),
    "weightKg": VitalSignRange(0.2, 700, whole=False),
    "heightCm": VitalSignRange(20, 280, whole=False),
}


def vital_signs(values: Mapping[str, int | float | None], field: str) -> dict[str, int | float]:
    """The given measurements, None ones dropped; an empty dict when none was given."""
    _reject_unknown_keys(values, VITAL_SIGN_RANGES.keys(), field)
    cleaned: dict[str, int | float] = {}
    for name, bounds in VITAL_SIGN_RANGES.items():
        value = values.get(name)
        if value is not None:
            cleaned[name] = _measurement(value, f"{field}.{name}", bounds)
    systolic, diastolic = cleaned.get("systolicBp"), cleaned.get("diastolicBp")
    if systolic is not None and diastolic is not None and diastolic >= systolic:
        _fail(f"{field}.diastolicBp", "must be below systolicBp")
    return cleaned


def _measurement(value: object, field: str, bounds: VitalSignRange) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(field, "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        _fail(field, "must be a finite number")
    if not bounds.low <= value <= bounds.high:
        _fail(field, f"must be between {bounds.low:g} and {bounds.high:g}")
    if not bounds.whole:
        return float(value)
    if value != int(value):
        _fail(field, "must be a whole number")
    return int(value)


def _reject_unknown_keys(values: Mapping[str, object], known: Collection[str], field: str) -> None:
    # The unknown names are not echoed: they are caller-chosen strings of any length.
    if any(key not in known for key in values):
        _fail(field, f"unknown field; expected only {', '.join(known)}")


# --- prescriptions and lab results ---------------------------------------------------------------

# Checks one value of a list item (None when absent) and returns it cleaned, or None to omit it.
_ItemCheck = Callable[[object, str], object]


def _required_string(max_length: int) -> _ItemCheck:
    def check(value: object, field: str) -> str:
        if value is None:
            _fail(field, "is required")
        if not isinstance(value, str):
            _fail(field, "must be a string")
        return text(value, field, max_length=max_length)

    return check


def _optional_string(max_length: int, *, multiline: bool = False) -> _ItemCheck:
    def check(value: object, field: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            _fail(field, "must be a string")
        return optional_text(value, field, max_length=max_length, multiline=multiline)

    return check


def _optional_int(low: int, high: int) -> _ItemCheck:
    def check(value: object, field: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(field, "must be a whole number")
        if not low <= value <= high:
            _fail(field, f"must be between {low} and {high}")
        return value

    return check


def _optional_bool(value: object, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    _fail(field, "must be true or false")


_PRESCRIPTION_FIELDS: Final[Mapping[str, _ItemCheck]] = {
    "medication": _required_string(MEDICATION_MAX),
    "dosage": _required_string(DOSAGE_MAX),
    "frequency": _required_string(FREQUENCY_MAX),
    "durationDays": _optional_int(DURATION_DAYS_MIN, DURATION_DAYS_MAX),
    "notes": _optional_string(PRESCRIPTION_NOTES_MAX, multiline=True),
}

_LAB_RESULT_FIELDS: Final[Mapping[str, _ItemCheck]] = {
    "test": _required_string(LAB_TEST_MAX),
    "value": _required_string(LAB_VALUE_MAX),
    "unit": _optional_string(LAB_UNIT_MAX),
    "referenceRange": _optional_string(REFERENCE_RANGE_MAX),
    "abnormal": _optional_bool,
}


def prescriptions(items: Sequence[Mapping[str, Any]], field: str) -> list[dict[str, Any]]:
    return _items(items, field, checks=_PRESCRIPTION_FIELDS, max_items=PRESCRIPTIONS_MAX)


def lab_results(items: Sequence[Mapping[str, Any]], field: str) -> list[dict[str, Any]]:
    return _items(items, field, checks=_LAB_RESULT_FIELDS, max_items=LAB_RESULTS_MAX)


def _items(
    items: Sequence[Mapping[str, Any]],
    field: str,
    *,
    checks: Mapping[str, _ItemCheck],
    max_items: int,
) -> list[dict[str, Any]]:
    if len(items) > max_items:
        _fail(field, f"at most {max_items} items")
    return [_item(item, f"{field}[{index}]", checks) for index, item in enumerate(items)]


def _item(item: Mapping[str, Any], field: str, checks: Mapping[str, _ItemCheck]) -> dict[str, Any]:
    _reject_unknown_keys(item, checks.keys(), field)
    cleaned: dict[str, Any] = {}
    for name, check in checks.items():
        value = check(item.get(name), f"{field}.{name}")
        if value is not None:
            cleaned[name] = value
    return cleaned
