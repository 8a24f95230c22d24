"""``app.domain.validation``: pure unit tests, no database."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import String, Table

from app.domain import validation as v
from app.domain.errors import BadUserInput, ErrorCode
from app.ops.seed import npi_check_digit
from models import Diagnosis, MedicalRecord, Patient, Provider, RecordStatusEvent

# A stand-in for patient data: no rejection message may contain it.
SECRET = "Zebediah"


def rejection(call: Callable[[], object]) -> str:
    with pytest.raises(BadUserInput) as caught:
        call()
    assert caught.value.code is ErrorCode.BAD_USER_INPUT
    return caught.value.message


def column_length(entity: type[Any], column: str) -> int | None:
    table = entity.__table__
    assert isinstance(table, Table)
    column_type = table.c[column].type
    assert isinstance(column_type, String)
    return column_type.length


# --- constants ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "entity", "column"),
    [
        (v.NAME_MAX, Provider, "given_name"),
        (v.NAME_MAX, Provider, "family_name"),
        (v.NAME_MAX, Patient, "given_name"),
        (v.NAME_MAX, Patient, "family_name"),
        (v.SPECIALTY_MAX, Provider, "specialty"),
        (v.EMAIL_MAX, Provider, "email"),
        (v.EMAIL_MAX, Patient, "email"),
        (v.PHONE_MAX, Patient, "phone"),
        (v.MRN_MAX, Patient, "mrn"),
        (v.COGNITO_SUB_MAX, Provider, "cognito_sub"),
        (v.COGNITO_SUB_MAX, Patient, "cognito_sub"),
        (v.NPI_LENGTH, Provider, "npi"),
        (v.ICD10_MAX, Diagnosis, "icd10_code"),
        (v.DIAGNOSIS_DESCRIPTION_MAX, Diagnosis, "description"),
        (v.CHIEF_COMPLAINT_MAX, MedicalRecord, "chief_complaint"),
        (v.REASON_MAX, RecordStatusEvent, "reason"),
    ],
)
def test_limits_match_the_column_lengths(limit: int, entity: type[Any], column: str) -> None:
    assert column_length(entity, column) == limit


def test_longest_icd10_shape_fits_its_column() -> None:
    assert v.icd10("S72.001A", "f") == "S72.001A"
    assert len("S72.001A") == v.ICD10_MAX


# --- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jane", "Jane"),
        ("  Jane  ", "Jane"),
        ("\tJane\n", "Jane"),
        ("José Ñúñez-O'Brien", "José Ñúñez-O'Brien"),
        ("李小龙", "李小龙"),
        (
            "\u0645\u0647\u0631\u200c\u0646\u0627\u0632",
            "\u0645\u0647\u0631\u200c\u0646\u0627\u0632",
        ),  # Persian name with a zero-width non-joiner
        ("x" * 100, "x" * 100),
        ("é" * 100, "é" * 100),  # characters, not UTF-8 bytes
        ("  " + "x" * 100 + "  ", "x" * 100),  # the limit applies after stripping
    ],
)
def test_text_accepts_and_strips(value: str, expected: str) -> None:
    assert v.text(value, "input.givenName", max_length=100) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must not be empty"),
        ("   \t\n ", "must not be empty"),
        ("x" * 101, "at most 100 characters"),
        ("é" * 101, "at most 100 characters"),
        ("Ja\x00ne", "must not contain control characters or line breaks"),
        ("Ja\x1bne", "must not contain control characters or line breaks"),
        ("Ja\x7fne", "must not contain control characters or line breaks"),
        ("Ja\x85ne", "must not contain control characters or line breaks"),
        ("Ja\nne", "must not contain control characters or line breaks"),
        ("Ja\tne", "must not contain control characters or line breaks"),
        ("Ja\rne", "must not contain control characters or line breaks"),
        ("Ja\ud800ne", "must not contain control characters or line breaks"),
    ],
)
def test_text_rejects(value: str, problem: str) -> None:
    message = rejection(lambda: v.text(value, "input.givenName", max_length=100))
    assert message == f"input.givenName: {problem}"


def test_text_not_required_allows_blank() -> None:
    assert v.text("   ", "input.specialty", max_length=100, required=False) == ""


def test_text_not_required_still_checks_length() -> None:
    message = rejection(lambda: v.text("x" * 11, "input.specialty", max_length=10, required=False))
    assert message == "input.specialty: at most 10 characters"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("line one\nline two", "line one\nline two"),
        ("col\tcol", "col\tcol"),
        ("windows\r\nline\r\nbreaks", "windows\nline\nbreaks"),
        ("old mac\rbreaks", "old mac\nbreaks"),
        ("\n  padded  \n", "padded"),
    ],
)
def test_multiline_text_keeps_tabs_and_line_breaks(value: str, expected: str) -> None:
    assert v.text(value, "input.notes", max_length=100, multiline=True) == expected


def test_multiline_length_counts_normalised_line_breaks() -> None:
    value = "a\r\n" * 5 + "a"  # 16 characters as sent, 11 once CRLF becomes LF
    assert v.text(value, "input.notes", max_length=11, multiline=True) == "a\n" * 5 + "a"


@pytest.mark.parametrize("control", ["\x00", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x9f"])
def test_multiline_text_rejects_other_control_characters(control: str) -> None:
    message = rejection(
        lambda: v.text(f"a{control}b", "input.notes", max_length=100, multiline=True)
    )
    assert message == (
        "input.notes: must not contain control characters other than tabs and line breaks"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("   ", None), (" Cardiology ", "Cardiology")],
)
def test_optional_text(value: str | None, expected: str | None) -> None:
    assert v.optional_text(value, "input.specialty", max_length=v.SPECIALTY_MAX) == expected


def test_optional_text_rejects_too_long() -> None:
    message = rejection(
        lambda: v.optional_text("x" * 101, "input.specialty", max_length=v.SPECIALTY_MAX)
    )
    assert message == "input.specialty: at most 100 characters"


def test_optional_text_multiline() -> None:
    value = v.optional_text("a\r\nb", "input.notes", max_length=v.NOTES_MAX, multiline=True)
    assert value == "a\nb"


# --- reason -------------------------------------------------------------------------------------


@pytest.mark.parametrize("required", [True, False])
def test_reason_accepts_text(required: bool) -> None:
    assert v.reason("  typo in\r\ndosage ", "input.reason", required=required) == (
        "typo in\ndosage"
    )


@pytest.mark.parametrize("value", [None, "", "  \n "])
def test_reason_required(value: str | None) -> None:
    assert rejection(lambda: v.reason(value, "input.reason", required=True)) == (
        "input.reason: is required"
    )


@pytest.mark.parametrize("value", [None, "", "  \n "])
def test_reason_optional(value: str | None) -> None:
    assert v.reason(value, "input.reason", required=False) is None


def test_reason_length_boundary() -> None:
    assert v.reason("x" * 1000, "input.reason", required=True) == "x" * 1000
    message = rejection(lambda: v.reason("x" * 1001, "input.reason", required=True))
    assert message == "input.reason: at most 1000 characters"


# --- npi ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234567893", "1234567893"),  # the example in the CMS check-digit paper
        (" 1234567893 ", "1234567893"),
        ("1245319599", "1245319599"),
        ("1000000004", "1000000004"),
        ("9999999995", "9999999995"),
    ],
)
def test_npi_accepts(value: str, expected: str) -> None:
    assert v.npi(value, "input.npi") == expected


@pytest.mark.parametrize(
    "value",
    [
        "1234567890",  # wrong check digit
        "1234567894",
        "123456789",
        "12345678930",
        "123456789a",
        "12345 67893",
        "1234-567893",
        "+234567893",
        "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0663",  # Arabic-Indic digits
        "1234567893\n0",
    ],
)
def test_npi_rejects(value: str) -> None:
    assert rejection(lambda: v.npi(value, "input.npi")) == (
        "input.npi: must be 10 digits with a valid check digit"
    )


def test_npi_rejects_empty() -> None:
    assert rejection(lambda: v.npi("  ", "input.npi")) == "input.npi: must not be empty"


@pytest.mark.parametrize("body", ["123456789", "000000000", "999999999", "124531959", "170000000"])
def test_npi_accepts_exactly_one_check_digit(body: str) -> None:
    accepted = []
    for digit in "0123456789":
        try:
            v.npi(body + digit, "input.npi")
        except BadUserInput:
            continue
        accepted.append(int(digit))
    # Agrees with the seed generator, so synthetic providers pass validation.
    assert accepted == [npi_check_digit(body)]


# --- icd10 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("E11.9", "E11.9"),
        ("J45.909", "J45.909"),
        ("S72.001A", "S72.001A"),
        ("I10", "I10"),
        ("M54.50", "M54.50"),
        ("U07.1", "U07.1"),
        ("C4A.0", "C4A.0"),
        ("e11.9", "E11.9"),
        ("s72.001a", "S72.001A"),
        (" E11.9 ", "E11.9"),
    ],
)
def test_icd10_accepts(value: str, expected: str) -> None:
    assert v.icd10(value, "input.icd10Code") == expected


@pytest.mark.parametrize(
    "value",
    [
        "e11..9",
        "123",
        "E1",
        "E11.",
        "E11.12345",
        "E119",
        "E 11.9",
        "E11 .9",
        "E11. 9",
        "1E1.9",
        "EE1.9",
        ".E11",
        "E11-9",
        "E11.9\nX",
        "\u013110",  # dotless i: upper() would turn it into I10
        "\uff2511.9",  # fullwidth E
    ],
)
def test_icd10_rejects(value: str) -> None:
    assert rejection(lambda: v.icd10(value, "input.icd10Code")) == (
        "input.icd10Code: must be an ICD-10 code such as E11.9, I10 or S72.001A"
    )


def test_icd10_rejects_empty() -> None:
    assert rejection(lambda: v.icd10("", "input.icd10Code")) == (
        "input.icd10Code: must not be empty"
    )


# --- email --------------------------------------------------------------------------------------

EMAIL_PROBLEM = "must be an email address such as name@example.com"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("jane@example.com", "jane@example.com"),
        ("  jane@example.com ", "jane@example.com"),
        ("Jane.Doe@Example.COM", "Jane.Doe@example.com"),  # local part kept as given
        ("a.b+tag@sub.example.org", "a.b+tag@sub.example.org"),
        ("x@y.co", "x@y.co"),
        ("josé@bücher.de", "josé@bücher.de"),
    ],
)
def test_email_accepts(value: str, expected: str) -> None:
    assert v.email(value, "input.email") == expected


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "jane@example",
        "@example.com",
        "jane@",
        "jane@@example.com",
        "jane@doe@example.com",
        "jane doe@example.com",
        "jane@exa mple.com",
        "jane@.example.com",
        "jane@example.",
        "jane@example..com",
        "jane\x00@example.com",
        "jane@example.com\nbcc@evil.example",
        "jane\u00a0@example.com",
    ],
)
def test_email_rejects(value: str) -> None:
    assert rejection(lambda: v.email(value, "input.email")) == f"input.email: {EMAIL_PROBLEM}"


def test_email_rejects_empty() -> None:
    assert rejection(lambda: v.email(" ", "input.email")) == "input.email: must not be empty"


def test_email_length_boundary() -> None:
    domain = "@" + "d" * 60 + ".example.com"
    longest = "l" * (254 - len(domain)) + domain
    assert v.email(longest, "input.email") == longest
    assert rejection(lambda: v.email("l" + longest, "input.email")) == (
        "input.email: at most 254 characters"
    )


# --- phone --------------------------------------------------------------------------------------

PHONE_PROBLEM = (
    "must be a phone number of 7 to 15 digits, optionally starting with + and separated by "
    "spaces, dashes, dots or parentheses"
)


@pytest.mark.parametrize(
    "value",
    [
        "+1 (555) 123-4567",
        "+15551234567",
        "555.123.4567",
        "(020) 7183 8750",
        "+44 20 7183 8750",
        "1234567",  # 7 digits
        "+123456789012345",  # 15 digits
        "1234567" + " " * 24 + "8",  # 32 characters
    ],
)
def test_phone_accepts(value: str) -> None:
    assert v.phone(f"  {value} ", "input.phone") == value


@pytest.mark.parametrize(
    "value",
    [
        "123456",  # 6 digits
        "+1234567890123456",  # 16 digits
        "+",
        "()-. ",
        "12+34567",
        "++15551234567",
        "555-CALL-NOW",
        "555 1234 ext 5",
        "555_123_4567",
        "555/123/4567",
        "\uff15\uff15\uff15\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # fullwidth digits
        "555\n1234567",
    ],
)
def test_phone_rejects(value: str) -> None:
    assert rejection(lambda: v.phone(value, "input.phone")) == f"input.phone: {PHONE_PROBLEM}"


def test_phone_rejects_too_long() -> None:
    value = "1234567" + " " * 25 + "8"  # 33 characters
    assert rejection(lambda: v.phone(value, "input.phone")) == (
        "input.phone: at most 32 characters"
    )


def test_phone_rejects_empty() -> None:
    assert rejection(lambda: v.phone("", "input.phone")) == "input.phone: must not be empty"


# --- mrn ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MRN-000123", "MRN-000123"),
        (" abc-123 ", "abc-123"),
        ("7", "7"),
        ("x" * 64, "x" * 64),
    ],
)
def test_mrn_accepts(value: str, expected: str) -> None:
    assert v.mrn(value, "input.mrn") == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 65, "at most 64 characters"),
        ("MRN 1", "may contain only letters A-Z, digits and hyphens"),
        ("MRN_1", "may contain only letters A-Z, digits and hyphens"),
        ("MRN/1", "may contain only letters A-Z, digits and hyphens"),
        ("MRN%", "may contain only letters A-Z, digits and hyphens"),
        ("Müller-1", "may contain only letters A-Z, digits and hyphens"),
        ("\uff2d\uff32\uff2e1", "may contain only letters A-Z, digits and hyphens"),  # fullwidth
        ("MRN\n-1", "may contain only letters A-Z, digits and hyphens"),
    ],
)
def test_mrn_rejects(value: str, problem: str) -> None:
    assert rejection(lambda: v.mrn(value, "input.mrn")) == f"input.mrn: {problem}"


# --- cognito_sub --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4f3c2a1e-8d7b-4c6a-9e5f-0a1b2c3d4e5f", "4f3c2a1e-8d7b-4c6a-9e5f-0a1b2c3d4e5f"),
        ("us-east-1:abc|def", "us-east-1:abc|def"),
        (" sub-1 ", "sub-1"),
        ("s" * 128, "s" * 128),
    ],
)
def test_cognito_sub_accepts(value: str, expected: str) -> None:
    assert v.cognito_sub(value, "input.cognitoSub") == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must not be empty"),
        ("s" * 129, "at most 128 characters"),
        ("a b", "must not contain whitespace or control characters"),
        ("a\tb", "must not contain whitespace or control characters"),
        ("a\u00a0b", "must not contain whitespace or control characters"),
        ("a\u2028b", "must not contain whitespace or control characters"),
        ("a\x00b", "must not contain whitespace or control characters"),
        ("a\x7fb", "must not contain whitespace or control characters"),
    ],
)
def test_cognito_sub_rejects(value: str, problem: str) -> None:
    assert rejection(lambda: v.cognito_sub(value, "input.cognitoSub")) == (
        f"input.cognitoSub: {problem}"
    )


# --- date_of_birth ------------------------------------------------------------------------------

TODAY = date(2026, 3, 15)


@pytest.mark.parametrize("value", [TODAY, date(1900, 1, 1), date(1984, 2, 29)])
def test_date_of_birth_accepts(value: date) -> None:
    assert v.date_of_birth(value, "input.dateOfBirth", today=TODAY) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (TODAY + timedelta(days=1), "must not be in the future"),
        (date(2100, 1, 1), "must not be in the future"),
        (date(1899, 12, 31), "must not be before 1900-01-01"),
        (date(1, 1, 1), "must not be before 1900-01-01"),
    ],
)
def test_date_of_birth_rejects(value: date, problem: str) -> None:
    message = rejection(lambda: v.date_of_birth(value, "input.dateOfBirth", today=TODAY))
    assert message == f"input.dateOfBirth: {problem}"


# --- visit_date ---------------------------------------------------------------------------------

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
MINUS_7 = timezone(timedelta(hours=-7))
PLUS_1 = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW, NOW),
        (NOW + timedelta(days=1), NOW + timedelta(days=1)),
        (datetime(1900, 1, 1, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC)),
        (datetime(2026, 3, 1, 10, 0, tzinfo=MINUS_7), datetime(2026, 3, 1, 17, 0, tzinfo=UTC)),
        # 1 day ahead of now measured in UTC, whatever the offset it was written with.
        (datetime(2026, 3, 16, 13, 0, tzinfo=PLUS_1), NOW + timedelta(days=1)),
    ],
)
def test_visit_date_accepts_and_converts_to_utc(value: datetime, expected: datetime) -> None:
    result = v.visit_date(value, "input.visitDate", now=NOW)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (datetime(2026, 3, 1, 10, 0), "must include a UTC offset, e.g. 2026-11-23T10:15:00+00:00"),
        (
            NOW + timedelta(days=1, microseconds=1),
            "must not be more than 1 day in the future",
        ),
        (
            datetime(2026, 3, 16, 6, 0, 1, tzinfo=MINUS_7),
            "must not be more than 1 day in the future",
        ),
        (datetime.max.replace(tzinfo=MINUS_7), "must not be more than 1 day in the future"),
        (datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC), "must not be before 1900-01-01"),
        (datetime(1900, 1, 1, 0, 30, tzinfo=PLUS_1), "must not be before 1900-01-01"),
        (datetime.min.replace(tzinfo=PLUS_1), "must not be before 1900-01-01"),
    ],
)
def test_visit_date_rejects(value: datetime, problem: str) -> None:
    message = rejection(lambda: v.visit_date(value, "input.visitDate", now=NOW))
    assert message == f"input.visitDate: {problem}"


# --- follow_up_date -----------------------------------------------------------------------------

VISIT = date(2026, 3, 15)
LEAP_VISIT = date(2024, 2, 29)


@pytest.mark.parametrize(
    ("value", "visit"),
    [
        (VISIT, VISIT),
        (VISIT + timedelta(days=14), VISIT),
        (date(2031, 3, 15), VISIT),
        (date(2029, 2, 28), LEAP_VISIT),
        (date(9999, 12, 31), date(9999, 12, 30)),
    ],
)
def test_follow_up_date_accepts(value: date, visit: date) -> None:
    assert v.follow_up_date(value, "input.followUpDate", visit_date=visit) == value


@pytest.mark.parametrize(
    ("value", "visit", "problem"),
    [
        (VISIT - timedelta(days=1), VISIT, "must not be before the visit date"),
        (date(2031, 3, 16), VISIT, "must not be more than 5 years after the visit date"),
        (date(2029, 3, 1), LEAP_VISIT, "must not be more than 5 years after the visit date"),
    ],
)
def test_follow_up_date_rejects(value: date, visit: date, problem: str) -> None:
    message = rejection(lambda: v.follow_up_date(value, "input.followUpDate", visit_date=visit))
    assert message == f"input.followUpDate: {problem}"


# --- vital_signs --------------------------------------------------------------------------------

VITALS = "input.vitalSigns"


def test_vital_signs_full_set() -> None:
    values: dict[str, int | float | None] = {
        "heightCm": 172.5,
        "systolicBp": 120,
        "diastolicBp": 80,
        "heartRate": 72,
        "respiratoryRate": 16,
        "temperatureC": 36.8,
        "oxygenSaturation": 98,
        "weightKg": 70,
    }
    result = v.vital_signs(values, VITALS)
    assert result == {
        "systolicBp": 120,
        "diastolicBp": 80,
        "heartRate": 72,
        "respiratoryRate": 16,
        "temperatureC": 36.8,
        "oxygenSaturation": 98,
        "weightKg": 70.0,
        "heightCm": 172.5,
    }
    assert list(result) == list(v.VITAL_SIGN_RANGES)
    assert isinstance(result["weightKg"], float)


def test_vital_signs_drops_none() -> None:
    assert v.vital_signs({"heartRate": 60, "temperatureC": None}, VITALS) == {"heartRate": 60}
    assert v.vital_signs({"heartRate": None}, VITALS) == {}
    assert v.vital_signs({}, VITALS) == {}


def test_vital_signs_whole_float_becomes_int() -> None:
    result = v.vital_signs({"heartRate": 72.0}, VITALS)
    assert result == {"heartRate": 72}
    assert isinstance(result["heartRate"], int)


BOUNDARIES = [
    ("systolicBp", 50, 300, 1),
    ("diastolicBp", 20, 200, 1),
    ("heartRate", 20, 300, 1),
    ("respiratoryRate", 4, 80, 1),
    ("temperatureC", 25, 45, 0.01),
    ("oxygenSaturation", 0, 100, 1),
    ("weightKg", 0.2, 700, 0.01),
    ("heightCm", 20, 280, 0.01),
]


@pytest.mark.parametrize(("name", "low", "high", "step"), BOUNDARIES)
def test_vital_signs_limits_are_inclusive(name: str, low: float, high: float, step: float) -> None:
    assert v.vital_signs({name: low}, VITALS) == {name: low}
    assert v.vital_signs({name: high}, VITALS) == {name: high}


@pytest.mark.parametrize("past", ["low", "high"])
@pytest.mark.parametrize(("name", "low", "high", "step"), BOUNDARIES)
def test_vital_signs_rejects_one_past_the_limits(
    name: str, low: float, high: float, step: float, past: str
) -> None:
    value = low - step if past == "low" else high + step
    assert rejection(lambda: v.vital_signs({name: value}, VITALS)) == (
        f"{VITALS}.{name}: must be between {low:g} and {high:g}"
    )


def test_vital_signs_range_message_example() -> None:
    assert rejection(lambda: v.vital_signs({"heartRate": 301}, VITALS)) == (
        "input.vitalSigns.heartRate: must be between 20 and 300"
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", ["temperatureC", "weightKg", "heartRate"])
def test_vital_signs_rejects_non_finite(name: str, value: float) -> None:
    assert rejection(lambda: v.vital_signs({name: value}, VITALS)) == (
        f"{VITALS}.{name}: must be a finite number"
    )


@pytest.mark.parametrize("name", ["systolicBp", "heartRate", "oxygenSaturation"])
def test_vital_signs_rejects_fractions_of_whole_measurements(name: str) -> None:
    assert rejection(lambda: v.vital_signs({name: 90.5}, VITALS)) == (
        f"{VITALS}.{name}: must be a whole number"
    )


@pytest.mark.parametrize("value", [True, "72", [72]])
def test_vital_signs_rejects_non_numbers(value: Any) -> None:
    assert rejection(lambda: v.vital_signs({"heartRate": value}, VITALS)) == (
        f"{VITALS}.heartRate: must be a number"
    )


def test_vital_signs_rejects_huge_integers_without_overflow() -> None:
    assert rejection(lambda: v.vital_signs({"weightKg": 10**400}, VITALS)) == (
        f"{VITALS}.weightKg: must be between 0.2 and 700"
    )


@pytest.mark.parametrize("diastolic", [120, 130])
def test_vital_signs_diastolic_below_systolic(diastolic: int) -> None:
    values: dict[str, int | float | None] = {"systolicBp": 120, "diastolicBp": diastolic}
    assert rejection(lambda: v.vital_signs(values, VITALS)) == (
        f"{VITALS}.diastolicBp: must be below systolicBp"
    )


def test_vital_signs_diastolic_alone_is_fine() -> None:
    assert v.vital_signs({"diastolicBp": 150}, VITALS) == {"diastolicBp": 150}


def test_vital_signs_rejects_unknown_keys_without_echoing_them() -> None:
    message = rejection(lambda: v.vital_signs({"heartRate": 60, SECRET: 1}, VITALS))
    assert message == (
        f"{VITALS}: unknown field; expected only systolicBp, diastolicBp, heartRate, "
        "respiratoryRate, temperatureC, oxygenSaturation, weightKg, heightCm"
    )


def test_vital_signs_rejects_snake_case_keys() -> None:
    assert rejection(lambda: v.vital_signs({"heart_rate": 60}, VITALS)).startswith(
        f"{VITALS}: unknown field"
    )


# --- prescriptions ------------------------------------------------------------------------------

RX = "input.prescriptions"


def prescription(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"medication": "Metformin", "dosage": "500 mg", "frequency": "BID"}
    item.update(overrides)
    return item


def test_prescriptions_full_item() -> None:
    item = prescription(
        medication=" Metformin ", durationDays=90, notes="  with meals\r\nmonitor B12 "
    )
    assert v.prescriptions([item], RX) == [
        {
            "medication": "Metformin",
            "dosage": "500 mg",
            "frequency": "BID",
            "durationDays": 90,
            "notes": "with meals\nmonitor B12",
        }
    ]


def test_prescriptions_omit_absent_and_blank_optionals() -> None:
    items = [prescription(), prescription(durationDays=None, notes=None), prescription(notes="  ")]
    assert v.prescriptions(items, RX) == [prescription()] * 3


def test_prescriptions_empty_list() -> None:
    assert v.prescriptions([], RX) == []


def test_prescriptions_item_count_boundary() -> None:
    assert len(v.prescriptions([prescription()] * 50, RX)) == 50
    assert rejection(lambda: v.prescriptions([prescription()] * 51, RX)) == (
        f"{RX}: at most 50 items"
    )


@pytest.mark.parametrize(
    ("key", "limit"),
    [("medication", 200), ("dosage", 100), ("frequency", 100), ("notes", 1000)],
)
def test_prescriptions_text_length_boundaries(key: str, limit: int) -> None:
    assert v.prescriptions([prescription(**{key: "x" * limit})], RX)[0][key] == "x" * limit
    items = [prescription(), prescription(), prescription(**{key: "x" * (limit + 1)})]
    assert rejection(lambda: v.prescriptions(items, RX)) == (
        f"{RX}[2].{key}: at most {limit} characters"
    )


@pytest.mark.parametrize("key", ["medication", "dosage", "frequency"])
@pytest.mark.parametrize(("value", "problem"), [(None, "is required"), (" ", "must not be empty")])
def test_prescriptions_required_fields(key: str, value: str | None, problem: str) -> None:
    assert rejection(lambda: v.prescriptions([prescription(**{key: value})], RX)) == (
        f"{RX}[0].{key}: {problem}"
    )


@pytest.mark.parametrize("key", ["medication", "dosage", "frequency"])
def test_prescriptions_missing_required_field(key: str) -> None:
    item = prescription()
    del item[key]
    assert rejection(lambda: v.prescriptions([item], RX)) == f"{RX}[0].{key}: is required"


@pytest.mark.parametrize("days", [1, 3650])
def test_prescriptions_duration_boundaries_accepted(days: int) -> None:
    assert v.prescriptions([prescription(durationDays=days)], RX)[0]["durationDays"] == days


@pytest.mark.parametrize(
    ("days", "problem"),
    [
        (0, "must be between 1 and 3650"),
        (3651, "must be between 1 and 3650"),
        (-5, "must be between 1 and 3650"),
        (True, "must be a whole number"),
        (7.5, "must be a whole number"),
        ("7", "must be a whole number"),
    ],
)
def test_prescriptions_duration_rejected(days: Any, problem: str) -> None:
    assert rejection(lambda: v.prescriptions([prescription(durationDays=days)], RX)) == (
        f"{RX}[0].durationDays: {problem}"
    )


@pytest.mark.parametrize(("key", "value"), [("medication", 5), ("notes", ["a"])])
def test_prescriptions_reject_non_strings(key: str, value: Any) -> None:
    assert rejection(lambda: v.prescriptions([prescription(**{key: value})], RX)) == (
        f"{RX}[0].{key}: must be a string"
    )


def test_prescriptions_single_line_fields_reject_line_breaks() -> None:
    assert rejection(lambda: v.prescriptions([prescription(dosage="5\nmg")], RX)) == (
        f"{RX}[0].dosage: must not contain control characters or line breaks"
    )


@pytest.mark.parametrize("key", ["duration_days", "refills"])
def test_prescriptions_reject_unknown_keys(key: str) -> None:
    message = rejection(lambda: v.prescriptions([prescription(**{key: 1})], RX))
    assert message == (
        f"{RX}[0]: unknown field; expected only medication, dosage, frequency, durationDays, notes"
    )


# --- lab_results --------------------------------------------------------------------------------

LABS = "input.labResults"


def lab(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"test": "HbA1c", "value": "6.1"}
    item.update(overrides)
    return item


def test_lab_results_full_item() -> None:
    item = lab(test=" HbA1c ", unit=" % ", referenceRange="4.0-5.6", abnormal=True)
    assert v.lab_results([item], LABS) == [
        {
            "test": "HbA1c",
            "value": "6.1",
            "unit": "%",
            "referenceRange": "4.0-5.6",
            "abnormal": True,
        }
    ]


def test_lab_results_keep_false_abnormal() -> None:
    assert v.lab_results([lab(abnormal=False)], LABS) == [lab(abnormal=False)]


def test_lab_results_omit_absent_and_blank_optionals() -> None:
    items = [lab(), lab(unit=None, referenceRange=None, abnormal=None), lab(unit=" ")]
    assert v.lab_results(items, LABS) == [lab()] * 3


def test_lab_results_item_count_boundary() -> None:
    assert len(v.lab_results([lab()] * 200, LABS)) == 200
    assert rejection(lambda: v.lab_results([lab()] * 201, LABS)) == f"{LABS}: at most 200 items"


@pytest.mark.parametrize(
    ("key", "limit"), [("test", 200), ("value", 200), ("unit", 50), ("referenceRange", 100)]
)
def test_lab_results_text_length_boundaries(key: str, limit: int) -> None:
    assert v.lab_results([lab(**{key: "x" * limit})], LABS)[0][key] == "x" * limit
    items = [lab(), lab(**{key: "x" * (limit + 1)})]
    assert rejection(lambda: v.lab_results(items, LABS)) == (
        f"{LABS}[1].{key}: at most {limit} characters"
    )


@pytest.mark.parametrize("key", ["test", "value"])
def test_lab_results_required_fields(key: str) -> None:
    item = lab()
    del item[key]
    assert rejection(lambda: v.lab_results([item], LABS)) == f"{LABS}[0].{key}: is required"
    assert rejection(lambda: v.lab_results([lab(**{key: ""})], LABS)) == (
        f"{LABS}[0].{key}: must not be empty"
    )


@pytest.mark.parametrize("abnormal", ["yes", 1, 0])
def test_lab_results_abnormal_must_be_boolean(abnormal: Any) -> None:
    assert rejection(lambda: v.lab_results([lab(abnormal=abnormal)], LABS)) == (
        f"{LABS}[0].abnormal: must be true or false"
    )


def test_lab_results_reject_numeric_value() -> None:
    assert rejection(lambda: v.lab_results([lab(value=6.1)], LABS)) == (
        f"{LABS}[0].value: must be a string"
    )


def test_lab_results_reject_unknown_keys() -> None:
    assert rejection(lambda: v.lab_results([lab(flag="H")], LABS)) == (
        f"{LABS}[0]: unknown field; expected only test, value, unit, referenceRange, abnormal"
    )


# --- messages never echo the rejected value -----------------------------------------------------

LEAKY_CALLS: list[tuple[str, Callable[[], object]]] = [
    ("name too long", lambda: v.text(SECRET * 20, "input.givenName", max_length=v.NAME_MAX)),
    ("name control", lambda: v.text(f"{SECRET}\x00", "input.givenName", max_length=v.NAME_MAX)),
    ("email shape", lambda: v.email(f"{SECRET} Doe@example.com", "input.email")),
    ("email no domain", lambda: v.email(f"{SECRET}@", "input.email")),
    ("email too long", lambda: v.email(f"{SECRET * 40}@example.com", "input.email")),
    ("phone letters", lambda: v.phone(f"555 {SECRET}", "input.phone")),
    ("phone too long", lambda: v.phone(f"555 1234567 {SECRET * 3}", "input.phone")),
    ("mrn", lambda: v.mrn(f"{SECRET} 1", "input.mrn")),
    ("cognito sub", lambda: v.cognito_sub(f"{SECRET} x", "input.cognitoSub")),
    ("icd10", lambda: v.icd10(SECRET, "input.icd10Code")),
    ("npi", lambda: v.npi(SECRET, "input.npi")),
    (
        "notes",
        lambda: v.text(f"{SECRET}\x07", "input.notes", max_length=v.NOTES_MAX, multiline=True),
    ),
    ("reason", lambda: v.reason(SECRET * 200, "input.reason", required=True)),
    (
        "prescription notes",
        lambda: v.prescriptions([prescription(notes=SECRET * 200)], RX),
    ),
    ("lab value", lambda: v.lab_results([lab(value=SECRET * 30)], LABS)),
    ("lab unit", lambda: v.lab_results([lab(unit=f"{SECRET}\x07x")], LABS)),
]


@pytest.mark.parametrize("call", [call for _, call in LEAKY_CALLS], ids=[n for n, _ in LEAKY_CALLS])
def test_messages_never_contain_the_rejected_value(call: Callable[[], object]) -> None:
    assert SECRET.lower() not in rejection(call).lower()


# --- values a statement carries: what PostgreSQL (and the driver) can take -----------------------


@pytest.mark.parametrize(
    "value",
    [
        datetime.min.replace(tzinfo=PLUS_1),  # year 0 in UTC
        datetime.max.replace(tzinfo=MINUS_7),  # year 10000 in UTC
    ],
)
def test_an_instant_an_offset_moves_out_of_range_is_refused(value: datetime) -> None:
    assert rejection(lambda: v.instant(value, "filter.visitedBefore")) == (
        "filter.visitedBefore: out of range"
    )


def test_an_instant_comes_back_in_utc() -> None:
    value = datetime(2026, 3, 1, 10, 0, tzinfo=PLUS_1)
    assert v.instant(value, "f") == value
    assert v.instant(value, "f").utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", "x\udfff"])
def test_text_postgresql_cannot_store_is_refused(value: str) -> None:
    assert rejection(lambda: v.storable_text(value, "after")).startswith("after: ")


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
def test_an_integer_beyond_bigint_is_refused(value: int) -> None:
    assert rejection(lambda: v.bigint(value, "after")) == "after: out of range"
    assert v.bigint(value - 1 if value > 0 else value + 1, "after")
