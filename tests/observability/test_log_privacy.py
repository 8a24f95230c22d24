"""The logs of a full API flow hold no patient data, no token and no query text or variables.

Every record any logger emits at DEBUG is captured and searched, in every form it could be
written: the message, its arguments, the exception text Python's own formatter makes, and the
JSON line of app/server/logging_config.py.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.server.logging_config import JsonFormatter
from tests.api_client import Api, error_codes
from tests.observability.helpers import request_lines

VALID_NPI = "1234567893"

GIVEN = "Quillonia"
FAMILY = "Vasterbrook"
EMAIL = "quillonia.vasterbrook@example.test"
PHONE = "+1 555 014 7382"
MRN = "MRN-ZQX-48151623"
COMPLAINT = "Quorple fever since Tuesday"
NOTES = "Zephyrine itch after kumquat tasting"
DIAGNOSIS = "Xanthoglyphic dermatitis"
NEW_FAMILY = "Oxtercombe"
BAD_DATE = "Zorblat-1990"
BAD_EMAIL = "zorblat.kwixmail"
SECRET_VALUES = [
    GIVEN,
    FAMILY,
    EMAIL,
    PHONE,
    "555 014 7382",
    MRN,
    "48151623",
    COMPLAINT,
    NOTES,
    DIAGNOSIS,
    NEW_FAMILY,
    BAD_DATE,
    "Zorblat",
    BAD_EMAIL,
    "kwixmail",
]

CREATE_PROVIDER = """mutation ObsCreateProvider($input: CreateProviderInput!) {
  createProvider(input: $input) { provider { id } } }"""
CREATE_PATIENT = """mutation ObsCreatePatient($input: CreatePatientInput!) {
  createPatient(input: $input) { patient { id version givenName familyName email phone mrn } } }"""
CREATE_RECORD = """mutation ObsCreateRecord($input: CreateRecordInput!) {
  createRecord(input: $input) { record { id notes chiefComplaint } } }"""
ADD_DIAGNOSIS = """mutation ObsAddDiagnosis($input: AddDiagnosisInput!) {
  addDiagnosis(input: $input) { diagnosis { id description } } }"""
UPDATE_PATIENT = """mutation ObsUpdatePatient($input: UpdatePatientInput!) {
  updatePatient(input: $input) { patient { id familyName } } }"""
PATIENT = """query ObsPatient($id: ID!) {
  patient(id: $id) { givenName familyName email phone mrn
    records { edges { node { notes chiefComplaint diagnoses { description } } } } } }"""


def patient_input(**changes: Any) -> dict[str, Any]:
    return {
        "mrn": MRN,
        "givenName": GIVEN,
        "familyName": FAMILY,
        "dateOfBirth": "1984-02-29",
        "sex": "FEMALE",
        "email": EMAIL,
        "phone": PHONE,
        **changes,
    }


async def run_flow(api: Api, failing_request_id: str) -> tuple[str, list[str]]:
    """A realistic sequence with successes, refusals and failures; the token and request ids."""
    token = api.token()
    request_ids: list[str] = []

    async def post(
        query: str, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        response = await api.post(query, variables, **kwargs)
        request_ids.append(response.headers.get("x-request-id", ""))
        body: dict[str, Any] = response.json()
        return body

    provider = await post(
        CREATE_PROVIDER,
        {"input": {"npi": VALID_NPI, "givenName": "Obs", "familyName": "Provider"}},
        token=token,
    )
    provider_id = provider["data"]["createProvider"]["provider"]["id"]

    created = await post(CREATE_PATIENT, {"input": patient_input()}, token=token)
    patient = created["data"]["createPatient"]["patient"]
    assert patient["familyName"] == FAMILY

    # The same MRN again: a unique violation, whose database message quotes the MRN.
    duplicate = await post(CREATE_PATIENT, {"input": patient_input()}, token=token)
    assert error_codes(duplicate) == ["CONFLICT"]

    visit = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    record = await post(
        CREATE_RECORD,
        {
            "input": {
                "patientId": patient["id"],
                "providerId": provider_id,
                "recordType": "CONSULTATION",
                "visitDate": visit,
                "chiefComplaint": COMPLAINT,
                "notes": NOTES,
            }
        },
        token=token,
    )
    record_id = record["data"]["createRecord"]["record"]["id"]
    diagnosis = await post(
        ADD_DIAGNOSIS,
        {
            "input": {
                "recordId": record_id,
                "icd10Code": "L30.9",
                "description": DIAGNOSIS,
                "type": "PRIMARY",
            }
        },
        token=token,
    )
    assert diagnosis["data"]["addDiagnosis"]["diagnosis"]["description"] == DIAGNOSIS

    read = await post(PATIENT, {"id": patient["id"]}, token=token)
    edges = read["data"]["patient"]["records"]["edges"]
    assert edges[0]["node"]["diagnoses"][0]["description"] == DIAGNOSIS
    # Patient data in the query text itself, not in variables.
    search = await post(
        f'{{ patients(filter: {{search: "{GIVEN}"}}) {{ edges {{ node {{ familyName }} }} }} }}',
        token=token,
    )
    assert search["data"]["patients"]["edges"][0]["node"]["familyName"] == FAMILY

    # Refused input: a variable the Date scalar rejects (graphql-core quotes it in the message),
    # a value the validation rejects, and a document that does not parse.
    bad_date = await post(
        CREATE_PATIENT, {"input": patient_input(dateOfBirth=BAD_DATE, mrn="MRN-2")}, token=token
    )
    assert error_codes(bad_date) == ["BAD_USER_INPUT"]
    assert BAD_DATE in str(bad_date["errors"])  # the caller is told; the log must not be
    bad_email = await post(
        CREATE_PATIENT, {"input": patient_input(email=BAD_EMAIL, mrn="MRN-3")}, token=token
    )
    assert error_codes(bad_email) == ["BAD_USER_INPUT"]
    broken = await post(f'{{ patients(filter: {{search: "{FAMILY}" }}) {{ edges {{', token=token)
    assert broken["errors"]

    # No token, a tampered token, and another tenant's admin.
    anonymous = await post(PATIENT, {"id": patient["id"]})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    tampered = await post(PATIENT, {"id": patient["id"]}, token=token[:-6] + "AAAAAA")
    assert error_codes(tampered) == ["UNAUTHENTICATED"]
    stranger = await post(PATIENT, {"id": patient["id"]}, token=api.token(tenant_id="t-other"))
    assert stranger["data"]["patient"] is None

    # Unexpected failures: the audit row of a read, and of a change, refused by the database.
    failed_read = await post(
        PATIENT, {"id": patient["id"]}, token=token, headers={"X-Request-ID": failing_request_id}
    )
    assert error_codes(failed_read) == ["INTERNAL_SERVER_ERROR"]
    failed_change = await post(
        UPDATE_PATIENT,
        {"input": {"id": patient["id"], "expectedVersion": 1, "familyName": NEW_FAMILY}},
        token=token,
        headers={"X-Request-ID": failing_request_id},
    )
    assert error_codes(failed_change) == ["INTERNAL_SERVER_ERROR"]
    return token, request_ids


def renderings(record: logging.LogRecord) -> list[str]:
    """Every way a handler could write the record."""
    plain = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [
        record.getMessage(),
        str(record.msg),
        repr(record.args),
        repr(getattr(record, "fields", None)),
        plain.format(record),  # sets exc_text with the full traceback, messages included
        record.exc_text or "",
        JsonFormatter().format(record),
    ]


async def test_logs_of_a_full_flow_hold_no_patient_data_or_tokens(
    api: Api, failing_request_id: str, all_logs: pytest.LogCaptureFixture
) -> None:
    token, request_ids = await run_flow(api, failing_request_id)

    _header, payload, signature = token.split(".")
    secrets = [*SECRET_VALUES, token, payload, signature, f"Bearer {token[:40]}"]
    records = all_logs.records
    leaks = [
        (record.name, secret)
        for record in records
        for text in renderings(record)
        for secret in secrets
        if secret.lower() in text.lower()
    ]
    assert leaks == []

    # The search had something to look at: one request line per request, and the failures.
    lines = request_lines(all_logs)
    assert len(lines) == len(request_ids)
    assert {line["request_id"] for line in lines} == set(request_ids)
    errors = [record for record in records if record.levelno >= logging.ERROR]
    assert len(errors) >= 2, "each refused audit row was expected to log an error"
