"""The request shapes, for medrec and for PostGraphile 4 (its generated schema), and their checks.

Each shape is a list of JSON bodies (wrk sends them in turn) plus a check of one answer, run
from Python before the load: data present, no errors, the expected number of rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.database import TENANT

# Exactly the document of tests/api/test_batching.py, run with n = 50.
MOBILE_QUERY = """query Mobile($n: Int!) {
  patients(first: $n) { edges { node { id mrn givenName familyName
    primaryProvider { id npi familyName }
    records(first: 10) { edges { node { id status visitDate
      provider { id familyName }
      diagnoses { icd10Code type }
      attachments { fileName status } } } } } } }
}"""

PATIENT_QUERY = """query Patient($id: ID!) {
  patient(id: $id) { id mrn givenName familyName dateOfBirth sex
    primaryProvider { id npi familyName } }
}"""

RECORDS_QUERY = """query Records($after: DateTime!) {
  records(first: 20, filter: {status: [FINALIZED], visitedAfter: $after}) { edges { node {
    id status visitDate recordType chiefComplaint
    patient { id familyName }
    provider { id familyName } } } }
}"""

ACCESS_LOG_QUERY = """query AccessLog($id: ID!) {
  patient(id: $id) { id accessLog(first: 20) { edges { node {
    occurredAt action actor actorRole recordIds } } } }
}"""

CREATE_RECORD = """mutation Create($input: CreateRecordInput!) {
  createRecord(input: $input) { record { id version status } }
}"""

CHANGE_STATUS = """mutation Change($input: ChangeRecordStatusInput!) {
  changeRecordStatus(input: $input) { record { id version status } }
}"""

SUBSCRIPTION = """subscription Watch {
  recordStatusChanged { sequence status changedAt record { id } }
}"""

# PostGraphile 4's generated schema for the same tables: composite foreign keys (tenant_id, ...)
# give the relation names; diagnoses and attachments are connections there, lists here.
PEER_MOBILE_QUERY = """query Mobile($n: Int!, $tenant: String!) {
  allPatients(first: $n, orderBy: [CREATED_AT_DESC, ID_DESC], condition: {tenantId: $tenant}) {
    nodes { id mrn givenName familyName
      providerByTenantIdAndPrimaryProviderId { id npi familyName }
      medicalRecordsByTenantIdAndPatientId(first: 10, orderBy: [VISIT_DATE_DESC, ID_DESC]) {
        nodes { id status visitDate
          providerByTenantIdAndProviderId { id familyName }
          diagnosesByTenantIdAndRecordIdAndPatientId { nodes { icd10Code type } }
          attachmentsByTenantIdAndRecordIdAndPatientId { nodes { fileName status } } } } } }
}"""

PEER_PATIENT_QUERY = """query Patient($id: UUID!) {
  patientById(id: $id) { id mrn givenName familyName dateOfBirth sex
    providerByTenantIdAndPrimaryProviderId { id npi familyName } }
}"""

PEER_RECORDS_QUERY = """query Records($after: Datetime!, $tenant: String!) {
  allMedicalRecords(first: 20, orderBy: [VISIT_DATE_DESC, ID_DESC],
      condition: {tenantId: $tenant, status: FINALIZED},
      filter: {visitDate: {greaterThanOrEqualTo: $after}}) { nodes {
    id status visitDate recordType chiefComplaint
    patientByTenantIdAndPatientId { id familyName }
    providerByTenantIdAndProviderId { id familyName } } }
}"""

PEER_CREATE_RECORD = """mutation Create($input: CreateMedicalRecordInput!) {
  createMedicalRecord(input: $input) { medicalRecord { id version status } }
}"""

PEER_CHANGE_STATUS = """mutation Change($input: UpdateMedicalRecordByIdInput!) {
  updateMedicalRecordById(input: $input) { medicalRecord { id version status } }
}"""

VISITED_AFTER = "2025-01-01T00:00:00+00:00"
# Written records get an old visit date, so they never reach the first page of a patient's
# records (the mobile shape) or of the records list.
WRITE_VISIT_DATE = "2019-06-03T09:30:00+00:00"
MOBILE_PAGE = 50
RECORDS_PER_PATIENT = 10


def body(query: str, variables: dict[str, Any]) -> str:
    return json.dumps({"query": query, "variables": variables}, separators=(",", ":"))


@dataclass(frozen=True)
class Population:
    """Ids to cycle over, in both spellings, for the same patients (newest first)."""

    patient_ids: Sequence[str]  # medrec's opaque ids
    provider_ids: Sequence[str]  # medrec's opaque id of each patient's primary provider
    patient_uuids: Sequence[str]
    provider_uuids: Sequence[str]
    expected_mobile_records: int  # rows the mobile shape returns, counted in SQL


Check = Callable[[dict[str, Any]], str | None]


@dataclass(frozen=True)
class Shape:
    key: str
    title: str
    bodies: Sequence[str]
    check: Check
    follow_up: str | None = None  # a write pair's second request, with __ID__
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _errors(answer: dict[str, Any]) -> str | None:
    if answer.get("errors"):
        return json.dumps(answer["errors"])[:500]
    if not answer.get("data"):
        return "no data"
    return None


def _mobile_check(expected_records: int, *, peer: bool) -> Check:
    def check(answer: dict[str, Any]) -> str | None:
        if problem := _errors(answer):
            return problem
        if peer:
            patients = [p for p in answer["data"]["allPatients"]["nodes"]]
            records = [
                r for p in patients for r in p["medicalRecordsByTenantIdAndPatientId"]["nodes"]
            ]
            with_provider = sum(
                p["providerByTenantIdAndPrimaryProviderId"] is not None for p in patients
            )
        else:
            patients = [e["node"] for e in answer["data"]["patients"]["edges"]]
            records = [e["node"] for p in patients for e in p["records"]["edges"]]
            with_provider = sum(p["primaryProvider"] is not None for p in patients)
        if len(patients) != MOBILE_PAGE:
            return f"{len(patients)} patients, expected {MOBILE_PAGE}"
        if len(records) != expected_records:
            return f"{len(records)} records, expected {expected_records}"
        if with_provider != MOBILE_PAGE:
            return f"{with_provider} patients with a primary provider"
        return None

    return check


def _one_check(path: Sequence[str]) -> Check:
    def check(answer: dict[str, Any]) -> str | None:
        if problem := _errors(answer):
            return problem
        value: Any = answer["data"]
        for key in path:
            value = value[key] if isinstance(value, dict) else None
        return None if value else f"nothing at {'.'.join(path)}"

    return check


def _count_check(path: Sequence[str], count: int) -> Check:
    def check(answer: dict[str, Any]) -> str | None:
        if problem := _errors(answer):
            return problem
        value: Any = answer["data"]
        for key in path:
            value = value[key]
        return None if len(value) == count else f"{len(value)} rows, expected {count}"

    return check


def medrec_shapes(population: Population) -> list[Shape]:
    writes = [
        body(
            CREATE_RECORD,
            {
                "input": {
                    "patientId": patient,
                    "providerId": provider,
                    "recordType": "CONSULTATION",
                    "visitDate": WRITE_VISIT_DATE,
                    "chiefComplaint": "benchmark write",
                }
            },
        )
        # Away from the newest patients, whom the mobile shape reads.
        for patient, provider in zip(
            population.patient_ids[100:], population.provider_ids[100:], strict=True
        )
    ]
    change = body(
        CHANGE_STATUS,
        {
            "input": {
                "id": "__ID__",
                "status": "ENTERED_IN_ERROR",
                "expectedVersion": 1,
                "reason": "benchmark",
            }
        },
    )
    return [
        Shape(
            "mobile",
            "1 mobile nested query (50 patients x 10 records)",
            [body(MOBILE_QUERY, {"n": MOBILE_PAGE})],
            _mobile_check(population.expected_mobile_records, peer=False),
        ),
        Shape(
            "patient",
            "2 patient(id:) + primaryProvider",
            [body(PATIENT_QUERY, {"id": pid}) for pid in population.patient_ids],
            _one_check(["patient", "primaryProvider", "id"]),
        ),
        Shape(
            "records",
            "3 records(filter: FINALIZED, visitedAfter), first 20",
            [body(RECORDS_QUERY, {"after": VISITED_AFTER})],
            _count_check(["records", "edges"], 20),
        ),
        Shape(
            "accesslog",
            "6 Patient.accessLog(first: 20)",
            [body(ACCESS_LOG_QUERY, {"id": pid}) for pid in population.patient_ids],
            _count_check(["patient", "accessLog", "edges"], 20),
            notes="with BENCH_AUDIT_ROWS of audit history, so every patient has 20 entries",
        ),
        Shape(
            "writes",
            "4 createRecord + changeRecordStatus (per HTTP request)",
            writes,
            _one_check(["createRecord", "record", "id"]),
            follow_up=change,
            notes="ENTERED_IN_ERROR: the one move a fresh DRAFT can make without a diagnosis",
        ),
    ]


def peer_shapes(population: Population) -> list[Shape]:
    writes = [
        body(
            PEER_CREATE_RECORD,
            {
                "input": {
                    "medicalRecord": {
                        "id": "__UUID__",
                        "tenantId": TENANT,
                        "patientId": patient,
                        "providerId": provider,
                        "recordType": "CONSULTATION",
                        "visitDate": WRITE_VISIT_DATE,
                        "chiefComplaint": "benchmark write",
                    }
                }
            },
        )
        for patient, provider in zip(
            population.patient_uuids[100:], population.provider_uuids[100:], strict=True
        )
    ]
    change = body(
        PEER_CHANGE_STATUS,
        {"input": {"id": "__ID__", "medicalRecordPatch": {"status": "ENTERED_IN_ERROR"}}},
    )
    return [
        Shape(
            "mobile",
            "1 mobile nested query (50 patients x 10 records)",
            [body(PEER_MOBILE_QUERY, {"n": MOBILE_PAGE, "tenant": TENANT})],
            _mobile_check(population.expected_mobile_records, peer=True),
        ),
        Shape(
            "patient",
            "2 patientById + provider",
            [body(PEER_PATIENT_QUERY, {"id": pid}) for pid in population.patient_uuids],
            _one_check(["patientById", "providerByTenantIdAndPrimaryProviderId", "id"]),
        ),
        Shape(
            "records",
            "3 allMedicalRecords(condition, filter), first 20",
            [body(PEER_RECORDS_QUERY, {"after": VISITED_AFTER, "tenant": TENANT})],
            _count_check(["allMedicalRecords", "nodes"], 20),
        ),
        Shape(
            "writes",
            "4 createMedicalRecord + updateMedicalRecordById",
            writes,
            _one_check(["createMedicalRecord", "medicalRecord", "id"]),
            follow_up=change,
            notes="plain INSERT/UPDATE: no validation, version, status event, NOTIFY or audit",
        ),
    ]
