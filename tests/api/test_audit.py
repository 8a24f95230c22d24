"""The audit trail, read straight from audit_events: a row per operation touching patient data.

Every test here also checks that no patient name reached the application's logs, with everything
down to DEBUG captured for the whole test.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.domain.opaque_ids import NodeType, OpaqueIds
from models import MedicalRecord, Patient
from models.enums import AuditOutcome, RecordStatus
from tests.api_client import Api, audit_rows, error_codes
from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")
CLIENT_ADDRESS = "203.0.113.7"  # the test client's address (see the `client` fixture)

# Distinctive patient names: none of them may ever show up in a log line.
NAMES = ("Wilhelmina", "Bartholomew", "Philippa", "Leopoldine", "Maximiliane", "Ottokar")


@pytest.fixture(autouse=True)
def no_names_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        line = f"{record.getMessage()} {record.exc_text or ''}"
        for name in NAMES:
            assert name not in line, f"{record.name} logged a patient name: {line[:300]}"


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def new_request_id() -> str:
    return f"audit-{uuid.uuid4().hex}"


async def send(
    api: Api,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None,
) -> tuple[str, dict[str, Any]]:
    """Posts with a fresh X-Request-ID; returns it and the JSON body."""
    request_id = new_request_id()
    response = await api.post(query, variables, token=token, headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id
    body: dict[str, Any] = response.json()
    return request_id, body


def decode(global_id: str) -> uuid.UUID:
    return IDS.decode_id(global_id)[1]


def assert_row(
    row: dict[str, Any],
    *,
    query: str,
    request_id: str,
    outcome: AuditOutcome,
    operation_name: str | None,
    operation_type: str,
    subject: str | None,
    roles: list[str],
    tenant_id: str | None,
    patient_ids: set[uuid.UUID],
    record_ids: set[uuid.UUID],
) -> None:
    assert row["outcome"] is outcome
    assert row["request_id"] == request_id
    assert row["operation_name"] == operation_name
    assert row["operation_type"] == operation_type
    assert row["query_sha256"] == sha256(query)
    assert row["subject"] == subject
    assert sorted(row["roles"]) == sorted(roles)
    assert row["tenant_id"] == tenant_id
    assert row["client_address"] == CLIENT_ADDRESS
    # Listed once each, whatever the number of times a row was handed out.
    assert sorted(row["patient_ids"]) == sorted(patient_ids)
    assert sorted(row["record_ids"]) == sorted(record_ids)
    assert abs((datetime.now(UTC) - row["occurred_at"]).total_seconds()) < 60


# --- documents ---------------------------------------------------------------------------------

CREATE_PROVIDER = """mutation CreateProvider($input: CreateProviderInput!) {
  createProvider(input: $input) { provider { id } } }"""
CREATE_PATIENT = """mutation CreatePatient($input: CreatePatientInput!) {
  createPatient(input: $input) { patient { id } } }"""
UPDATE_PATIENT = """mutation UpdatePatient($input: UpdatePatientInput!) {
  updatePatient(input: $input) { patient { id version } } }"""
CREATE_RECORD = """mutation CreateRecord($input: CreateRecordInput!) {
  createRecord(input: $input) { record { id } } }"""
UPDATE_RECORD = """mutation UpdateRecord($input: UpdateRecordInput!) {
  updateRecord(input: $input) { record { id version } } }"""
ADD_DIAGNOSIS = """mutation AddDiagnosis($input: AddDiagnosisInput!) {
  addDiagnosis(input: $input) { diagnosis { id } } }"""
REMOVE_DIAGNOSIS = """mutation RemoveDiagnosis($id: ID!) {
  removeDiagnosis(id: $id) { record { id } } }"""
CHANGE_STATUS = """mutation ChangeStatus($input: ChangeRecordStatusInput!) {
  changeRecordStatus(input: $input) { record { id status } } }"""


# --- mutations ---------------------------------------------------------------------------------


async def test_every_successful_mutation_appends_one_ok_row(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    provider = await factory.provider(cognito_sub="dr-audit")
    dr = api.token(subject="dr-audit", groups=("provider",))
    admin = api.token(subject="admin-audit", groups=("admin",))
    tenant = factory.tenant_id

    async def mutate(
        query: str, variables: dict[str, Any], token: str, name: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        request_id, body = await send(api, query, variables, token=token)
        assert "errors" not in body, body
        rows = await audit_rows(sessionmaker, request_id)
        assert len(rows) == 1, rows
        assert rows[0]["operation_name"] == name
        assert rows[0]["request_id"] == request_id
        assert rows[0]["query_sha256"] == sha256(query)
        return body["data"], rows[0]

    def check(
        row: dict[str, Any],
        *,
        subject: str,
        roles: list[str],
        patients: set[uuid.UUID],
        records: set[uuid.UUID],
    ) -> None:
        assert row["outcome"] is AuditOutcome.OK
        assert row["operation_type"] == "mutation"
        assert (row["subject"], sorted(row["roles"]), row["tenant_id"]) == (subject, roles, tenant)
        assert row["client_address"] == CLIENT_ADDRESS
        assert (set(row["patient_ids"]), set(row["record_ids"])) == (patients, records)

    data, row = await mutate(
        CREATE_PROVIDER,
        {"input": {"npi": "1234567893", "givenName": "Grace", "familyName": "Hopper"}},
        admin,
        "CreateProvider",
    )
    check(row, subject="admin-audit", roles=["admin"], patients=set(), records=set())

    data, row = await mutate(
        CREATE_PATIENT,
        {
            "input": {
                "mrn": "MRN-AUDIT-1",
                "givenName": NAMES[0],
                "familyName": NAMES[1],
                "dateOfBirth": "1970-03-04",
                "sex": "FEMALE",
                "email": f"{NAMES[0].lower()}@mail.test",
            }
        },
        dr,
        "CreatePatient",
    )
    patient_gid = data["createPatient"]["patient"]["id"]
    patient = decode(patient_gid)
    check(row, subject="dr-audit", roles=["provider"], patients={patient}, records=set())

    data, row = await mutate(
        UPDATE_PATIENT,
        {"input": {"id": patient_gid, "expectedVersion": 1, "familyName": NAMES[2]}},
        dr,
        "UpdatePatient",
    )
    check(row, subject="dr-audit", roles=["provider"], patients={patient}, records=set())

    data, row = await mutate(
        CREATE_RECORD,
        {
            "input": {
                "patientId": patient_gid,
                "recordType": "CONSULTATION",
                "visitDate": "2026-11-20T09:30:00+00:00",
                "notes": f"{NAMES[0]} reports headaches.",
            }
        },
        dr,
        "CreateRecord",
    )
    record_gid = data["createRecord"]["record"]["id"]
    record = decode(record_gid)
    check(row, subject="dr-audit", roles=["provider"], patients={patient}, records={record})
    async with sessionmaker() as session:
        stored = await session.scalar(
            select(MedicalRecord.provider_id).where(MedicalRecord.id == record)
        )
    assert stored == provider["id"]

    data, row = await mutate(
        UPDATE_RECORD,
        {"input": {"id": record_gid, "expectedVersion": 1, "chiefComplaint": "Headache"}},
        dr,
        "UpdateRecord",
    )
    check(row, subject="dr-audit", roles=["provider"], patients={patient}, records={record})

    data, row = await mutate(
        ADD_DIAGNOSIS,
        {
            "input": {
                "recordId": record_gid,
                "icd10Code": "G44.2",
                "description": "Tension-type headache",
                "type": "SECONDARY",
            }
        },
        dr,
        "AddDiagnosis",
    )
    check(row, subject="dr-audit", roles=["provider"], patients={patient}, records={record})

    data, row = await mutate(
        REMOVE_DIAGNOSIS, {"id": data["addDiagnosis"]["diagnosis"]["id"]}, dr, "RemoveDiagnosis"
    )
    check(row, subject="dr-audit", roles=["provider"], patients={patient}, records={record})

    data, row = await mutate(
        CHANGE_STATUS,
        {
            "input": {
                "id": record_gid,
                "status": "ENTERED_IN_ERROR",
                "expectedVersion": 4,
                "reason": "wrong patient",
            }
        },
        admin,
        "ChangeStatus",
    )
    check(row, subject="admin-audit", roles=["admin"], patients={patient}, records={record})


async def test_row_fields_of_a_mutation(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    patient = await factory.patient(given_name=NAMES[3])
    token = api.token(subject="dr-fields", groups=("provider", "admin", "cleaner"))
    variables = {
        "input": {
            "id": IDS.encode_id(NodeType.PATIENT, patient["id"]),
            "expectedVersion": 1,
            "givenName": NAMES[4],
        }
    }
    request_id, body = await send(api, UPDATE_PATIENT, variables, token=token)
    assert "errors" not in body, body
    rows = await audit_rows(sessionmaker, request_id)
    assert len(rows) == 1
    assert_row(
        rows[0],
        query=UPDATE_PATIENT,
        request_id=request_id,
        outcome=AuditOutcome.OK,
        operation_name="UpdatePatient",
        operation_type="mutation",
        subject="dr-fields",
        roles=["admin", "provider"],
        tenant_id=factory.tenant_id,
        patient_ids={patient["id"]},
        record_ids=set(),
    )


async def test_two_mutations_in_one_document_append_one_row_each(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    provider = await factory.provider()
    first = await factory.patient()
    second = await factory.patient()
    record = await factory.record(second, provider, status=RecordStatus.DRAFT)
    query = """mutation Both($p: UpdatePatientInput!, $r: UpdateRecordInput!) {
      a: updatePatient(input: $p) { patient { id } }
      b: updateRecord(input: $r) { record { id } } }"""
    variables = {
        "p": {
            "id": IDS.encode_id(NodeType.PATIENT, first["id"]),
            "expectedVersion": 1,
            "phone": "+1 555 010 0000",
        },
        "r": {
            "id": IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
            "expectedVersion": 1,
            "notes": "edited",
        },
    }
    request_id, body = await send(api, query, variables, token=api.token())
    assert "errors" not in body, body
    rows = await audit_rows(sessionmaker, request_id)
    assert [(r["outcome"], r["operation_name"]) for r in rows] == [
        (AuditOutcome.OK, "Both"),
        (AuditOutcome.OK, "Both"),
    ]
    assert [(set(r["patient_ids"]), set(r["record_ids"])) for r in rows] == [
        ({first["id"]}, set()),
        ({second["id"]}, {record["id"]}),
    ]


async def test_patient_data_read_in_a_mutation_response_is_audited(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The payload may reach past the changed row; what it hands out was read and is audited."""
    provider = await factory.provider()
    patient = await factory.patient()
    draft = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    earlier = await factory.record(patient, provider, status=RecordStatus.FINALIZED)
    query = """mutation EditAndBrowse($input: UpdateRecordInput!) {
      updateRecord(input: $input) { record { id
        patient { id records { edges { node { id notes } } } } } } }"""
    variables = {
        "input": {
            "id": IDS.encode_id(NodeType.MEDICAL_RECORD, draft["id"]),
            "expectedVersion": 1,
            "notes": "edited",
        }
    }
    request_id, body = await send(api, query, variables, token=api.token())
    assert "errors" not in body, body
    returned = {
        decode(edge["node"]["id"])
        for edge in body["data"]["updateRecord"]["record"]["patient"]["records"]["edges"]
    }
    assert returned == {draft["id"], earlier["id"]}
    rows = await audit_rows(sessionmaker, request_id)
    assert rows
    assert rows[0]["outcome"] is AuditOutcome.OK
    audited = {record_id for row in rows for record_id in row["record_ids"]}
    assert audited >= returned, f"records handed out but not audited: {returned - audited}"


async def test_forbidden_mutation_by_a_patient_is_denied_and_changes_nothing(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    provider = await factory.provider()
    patient = await factory.patient(cognito_sub="patient-self", given_name=NAMES[0])
    record = await factory.record(patient, provider, status=RecordStatus.FINALIZED)
    token = api.token(subject="patient-self", groups=("patient",))
    attempts: list[tuple[str, dict[str, Any]]] = [
        (
            UPDATE_PATIENT,
            {
                "input": {
                    "id": IDS.encode_id(NodeType.PATIENT, patient["id"]),
                    "expectedVersion": 1,
                    "givenName": NAMES[5],
                }
            },
        ),
        (
            CHANGE_STATUS,
            {
                "input": {
                    "id": IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
                    "status": "AMENDED",
                    "expectedVersion": 1,
                    "reason": "I disagree",
                }
            },
        ),
    ]
    for query, variables in attempts:
        request_id, body = await send(api, query, variables, token=token)
        assert error_codes(body) == ["FORBIDDEN"]
        assert body["data"] is None
        rows = await audit_rows(sessionmaker, request_id)
        assert len(rows) == 1
        assert_row(
            rows[0],
            query=query,
            request_id=request_id,
            outcome=AuditOutcome.DENIED,
            operation_name=query.split("(")[0].removeprefix("mutation ").strip(),
            operation_type="mutation",
            subject="patient-self",
            roles=["patient"],
            tenant_id=factory.tenant_id,
            patient_ids=set(),
            record_ids=set(),
        )

    async with sessionmaker() as session:
        stored_patient = (
            await session.execute(
                select(Patient.given_name, Patient.version).where(Patient.id == patient["id"])
            )
        ).one()
        stored_record = (
            await session.execute(
                select(MedicalRecord.status, MedicalRecord.version).where(
                    MedicalRecord.id == record["id"]
                )
            )
        ).one()
    assert tuple(stored_patient) == (NAMES[0], 1)
    assert tuple(stored_record) == (RecordStatus.FINALIZED, 1)


async def test_forbidden_after_the_row_was_locked_is_denied(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner = await factory.provider(cognito_sub="dr-owner")
    await factory.provider(cognito_sub="dr-other")
    patient = await factory.patient()
    record = await factory.record(patient, owner, status=RecordStatus.FINALIZED)
    variables = {
        "input": {
            "id": IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
            "status": "AMENDED",
            "expectedVersion": 1,
            "reason": "not mine",
        }
    }
    token = api.token(subject="dr-other", groups=("provider",))
    request_id, body = await send(api, CHANGE_STATUS, variables, token=token)
    assert error_codes(body) == ["FORBIDDEN"]
    rows = await audit_rows(sessionmaker, request_id)
    assert [(r["outcome"], r["subject"]) for r in rows] == [(AuditOutcome.DENIED, "dr-other")]
    async with sessionmaker() as session:
        version = await session.scalar(
            select(MedicalRecord.version).where(MedicalRecord.id == record["id"])
        )
    assert version == 1


async def test_unauthenticated_mutation_is_denied(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    patient = await factory.patient()
    variables = {
        "input": {
            "id": IDS.encode_id(NodeType.PATIENT, patient["id"]),
            "expectedVersion": 1,
            "givenName": NAMES[5],
        }
    }
    request_id, body = await send(api, UPDATE_PATIENT, variables, token=None)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    rows = await audit_rows(sessionmaker, request_id)
    assert len(rows) == 1
    assert_row(
        rows[0],
        query=UPDATE_PATIENT,
        request_id=request_id,
        outcome=AuditOutcome.DENIED,
        operation_name="UpdatePatient",
        operation_type="mutation",
        subject=None,
        roles=[],
        tenant_id=None,
        patient_ids=set(),
        record_ids=set(),
    )


@pytest.mark.parametrize("failure", ["bad-email", "stale-version", "duplicate-mrn", "transition"])
async def test_refused_input_is_an_error_row(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession], failure: str
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    pid = IDS.encode_id(NodeType.PATIENT, patient["id"])
    query = UPDATE_PATIENT
    code = "BAD_USER_INPUT"
    variables: dict[str, Any]
    if failure == "bad-email":
        variables = {"input": {"id": pid, "expectedVersion": 1, "email": f"{NAMES[2]}@"}}
    elif failure == "stale-version":
        variables = {"input": {"id": pid, "expectedVersion": 5, "givenName": NAMES[2]}}
        code = "CONFLICT"
    elif failure == "duplicate-mrn":
        query, code = CREATE_PATIENT, "CONFLICT"
        variables = {
            "input": {
                "mrn": patient["mrn"],
                "givenName": NAMES[2],
                "familyName": NAMES[3],
                "dateOfBirth": "1980-01-01",
                "sex": "MALE",
            }
        }
    else:
        query, code = CHANGE_STATUS, "INVALID_TRANSITION"
        variables = {  # no PRIMARY diagnosis
            "input": {
                "id": IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
                "status": "FINALIZED",
                "expectedVersion": 1,
            }
        }

    request_id, body = await send(api, query, variables, token=api.token(subject="admin-x"))

    assert error_codes(body) == [code]
    rows = await audit_rows(sessionmaker, request_id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["outcome"] is AuditOutcome.ERROR
    assert (row["subject"], row["roles"], row["tenant_id"]) == (
        "admin-x",
        ["admin"],
        factory.tenant_id,
    )
    assert row["operation_type"] == "mutation"
    assert row["query_sha256"] == sha256(query)
    assert row["client_address"] == CLIENT_ADDRESS
    # A refused change hands nothing out.
    assert (row["patient_ids"], row["record_ids"]) == ([], [])


# --- reads ----------------------------------------------------------------------------------


async def test_read_lists_exactly_the_patients_returned(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for name in NAMES[:3]:
        await factory.patient(given_name=name)
    query = """query FirstTwo { patients(first: 2) {
      pageInfo { hasNextPage } edges { node { id givenName } } } }"""
    request_id, body = await send(api, query, token=api.token(subject="reader"))
    assert "errors" not in body, body
    edges = body["data"]["patients"]["edges"]
    assert body["data"]["patients"]["pageInfo"]["hasNextPage"] is True
    returned = {decode(edge["node"]["id"]) for edge in edges}
    assert len(returned) == 2
    rows = await audit_rows(sessionmaker, request_id)
    assert len(rows) == 1
    assert_row(
        rows[0],
        query=query,
        request_id=request_id,
        outcome=AuditOutcome.OK,
        operation_name="FirstTwo",
        operation_type="query",
        subject="reader",
        roles=["admin"],
        tenant_id=factory.tenant_id,
        patient_ids=returned,
        record_ids=set(),
    )


async def test_read_lists_the_records_returned_and_not_the_hidden_ones(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    me = await factory.provider(cognito_sub="dr-reader")
    colleague = await factory.provider()
    patient = await factory.patient(given_name=NAMES[1])
    bystander = await factory.patient(given_name=NAMES[2])
    visible = {
        (await factory.record(patient, colleague, status=RecordStatus.FINALIZED))["id"],
        (await factory.record(patient, colleague, status=RecordStatus.AMENDED))["id"],
        (await factory.record(patient, me, status=RecordStatus.DRAFT))["id"],
    }
    hidden = (await factory.record(patient, colleague, status=RecordStatus.DRAFT))["id"]
    await factory.record(bystander, colleague, status=RecordStatus.FINALIZED)
    query = """query Chart($id: ID!) { patient(id: $id) { id familyName
      records(first: 10) { edges { node { id status diagnoses { id } } } } } }"""
    token = api.token(subject="dr-reader", groups=("provider",))

    request_id, body = await send(
        api, query, {"id": IDS.encode_id(NodeType.PATIENT, patient["id"])}, token=token
    )

    assert "errors" not in body, body
    edges = body["data"]["patient"]["records"]["edges"]
    returned = {decode(edge["node"]["id"]) for edge in edges}
    assert returned == visible
    assert hidden not in returned
    rows = await audit_rows(sessionmaker, request_id)
    assert len(rows) == 1
    assert_row(
        rows[0],
        query=query,
        request_id=request_id,
        outcome=AuditOutcome.OK,
        operation_name="Chart",
        operation_type="query",
        subject="dr-reader",
        roles=["provider"],
        tenant_id=factory.tenant_id,
        patient_ids={patient["id"]},
        record_ids=visible,
    )


async def test_patient_reading_own_records_lists_only_what_it_sees(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    provider = await factory.provider()
    patient = await factory.patient(cognito_sub="patient-reader", given_name=NAMES[4])
    other = await factory.patient(given_name=NAMES[5])
    shown = {
        (await factory.record(patient, provider, status=RecordStatus.FINALIZED))["id"],
        (await factory.record(patient, provider, status=RecordStatus.AMENDED))["id"],
    }
    await factory.record(patient, provider, status=RecordStatus.DRAFT)
    await factory.record(patient, provider, status=RecordStatus.ENTERED_IN_ERROR)
    await factory.record(other, provider, status=RecordStatus.FINALIZED)
    query = "query Mine { records { edges { node { id patient { id givenName } } } } }"
    token = api.token(subject="patient-reader", groups=("patient",))

    request_id, body = await send(api, query, token=token)

    assert "errors" not in body, body
    returned = {decode(edge["node"]["id"]) for edge in body["data"]["records"]["edges"]}
    assert returned == shown
    rows = await audit_rows(sessionmaker, request_id)
    assert len(rows) == 1
    assert rows[0]["outcome"] is AuditOutcome.OK
    assert set(rows[0]["record_ids"]) == shown
    assert set(rows[0]["patient_ids"]) == {patient["id"]}
    assert rows[0]["roles"] == ["patient"]


async def test_read_that_finds_nothing_still_appends_a_row(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    other = Factory(factory.sessionmaker, f"{factory.tenant_id}-other")
    foreign = await other.patient(given_name=NAMES[0])
    query = "query Probe($id: ID!) { patient(id: $id) { id givenName } }"
    request_id, body = await send(
        api, query, {"id": IDS.encode_id(NodeType.PATIENT, foreign["id"])}, token=api.token()
    )
    assert body["data"] == {"patient": None}
    rows = await audit_rows(sessionmaker, request_id)
    assert len(rows) == 1
    assert rows[0]["outcome"] is AuditOutcome.OK
    assert (rows[0]["patient_ids"], rows[0]["record_ids"]) == ([], [])


async def test_unauthenticated_read_is_denied_with_no_subject(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await factory.patient(given_name=NAMES[0])
    query = "query Snoop { patients { edges { node { id givenName } } } }"
    for token in (None, "not-a-jwt"):
        request_id, body = await send(api, query, token=token)
        assert error_codes(body) == ["UNAUTHENTICATED"]
        assert body["data"] is None
        rows = await audit_rows(sessionmaker, request_id)
        assert len(rows) == 1
        assert_row(
            rows[0],
            query=query,
            request_id=request_id,
            outcome=AuditOutcome.DENIED,
            operation_name="Snoop",
            operation_type="query",
            subject=None,
            roles=[],
            tenant_id=None,
            patient_ids=set(),
            record_ids=set(),
        )


async def test_read_without_a_role_is_denied(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    query = "{ patients { totalCount } }"
    request_id, body = await send(api, query, token=api.token(subject="nobody", groups=()))
    assert error_codes(body) == ["FORBIDDEN"]
    rows = await audit_rows(sessionmaker, request_id)
    assert [(r["outcome"], r["subject"], r["roles"], r["operation_name"]) for r in rows] == [
        (AuditOutcome.DENIED, "nobody", [], None)
    ]


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { queryType { name } } }",
        'query Intro { __type(name: "Patient") { fields { name } } }',
        "{ __typename }",
    ],
)
@pytest.mark.parametrize("signed_in", [False, True])
async def test_introspection_appends_nothing(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], query: str, signed_in: bool
) -> None:
    request_id, body = await send(api, query, token=api.token() if signed_in else None)
    assert "errors" not in body, body
    assert await audit_rows(sessionmaker, request_id) == []


async def test_introspection_next_to_a_data_field_is_audited(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    query = "{ __typename patients { totalCount } }"
    request_id, body = await send(api, query, token=api.token())
    assert "errors" not in body, body
    assert len(await audit_rows(sessionmaker, request_id)) == 1


# --- the table itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET outcome = 'ok', subject = 'someone-else' WHERE request_id = :rid",
        "DELETE FROM audit_events WHERE request_id = :rid",
        "UPDATE audit_events SET patient_ids = '{}'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
)
async def test_audit_events_are_append_only(
    api: Api,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    statement: str,
) -> None:
    query = "query Before { patients { totalCount } }"
    request_id, body = await send(api, query, token=api.token(subject="witness"))
    assert "errors" not in body, body
    before = await audit_rows(sessionmaker, request_id)
    assert len(before) == 1

    async with engine.connect() as connection:
        # Inside a transaction that is rolled back: were the trigger missing, nothing is lost.
        transaction = await connection.begin()
        try:
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(text(statement), {"rid": request_id})
        finally:
            await transaction.rollback()
    assert "append-only" in str(raised.value.orig)

    assert await audit_rows(sessionmaker, request_id) == before


# --- every row of patient data names its patient ------------------------------------------------


@pytest.mark.parametrize("node_type", [NodeType.DIAGNOSIS, NodeType.ATTACHMENT])
async def test_node_on_a_row_under_a_record_lists_its_patient(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    node_type: NodeType,
) -> None:
    provider = await factory.provider()
    patient = await factory.patient(given_name=NAMES[3])
    record = await factory.record(patient, provider, status=RecordStatus.FINALIZED)
    row = await (
        factory.diagnosis(record) if node_type is NodeType.DIAGNOSIS else factory.attachment(record)
    )
    query = "query One($id: ID!) { node(id: $id) { id } }"

    request_id, body = await send(
        api, query, {"id": IDS.encode_id(node_type, row["id"])}, token=api.token(subject="a")
    )

    assert "errors" not in body, body
    assert body["data"]["node"] is not None
    [audited] = await audit_rows(sessionmaker, request_id)
    assert audited["patient_ids"] == [patient["id"]]
    assert audited["record_ids"] == [record["id"]]


async def test_a_download_url_lists_the_patient_the_file_belongs_to(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    provider = await factory.provider()
    patient = await factory.patient(given_name=NAMES[4])
    record = await factory.record(patient, provider, status=RecordStatus.FINALIZED)
    attachment = await factory.attachment(record)
    query = "query File($id: ID!) { node(id: $id) { ... on Attachment { downloadUrl } } }"

    request_id, body = await send(
        api,
        query,
        {"id": IDS.encode_id(NodeType.ATTACHMENT, attachment["id"])},
        token=api.token(subject="a"),
    )

    assert "errors" not in body, body
    assert body["data"]["node"]["downloadUrl"]
    [audited] = await audit_rows(sessionmaker, request_id)
    assert audited["patient_ids"] == [patient["id"]]
    assert audited["record_ids"] == [record["id"]]
    assert audited["attachment_ids"] == [attachment["id"]]


async def test_reading_audit_events_lists_the_patients_they_name(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    patient = await factory.patient(given_name=NAMES[5])
    token = api.token(subject="auditor")
    _, read = await send(
        api,
        "query P($id: ID!) { patient(id: $id) { id } }",
        {"id": IDS.encode_id(NodeType.PATIENT, patient["id"])},
        token=token,
    )
    assert read["data"]["patient"] is not None
    query = """query Trail($p: ID!) { auditEvents(first: 5, filter: {patientId: $p}) {
      edges { node { patientIds } } } }"""

    request_id, body = await send(
        api, query, {"p": IDS.encode_id(NodeType.PATIENT, patient["id"])}, token=token
    )

    assert "errors" not in body, body
    assert body["data"]["auditEvents"]["edges"]
    [audited] = await audit_rows(sessionmaker, request_id)
    assert audited["patient_ids"] == [patient["id"]]


def test_every_table_is_declared_as_patient_data_or_not() -> None:
    from app.domain.audit import OWNERSHIP
    from models import Base

    served = {
        mapper.class_
        for mapper in Base.registry.mappers
        # Tables no field serves (audit_event_patients only finds audit rows).
        if mapper.class_.__tablename__
        not in ("persisted_documents", "subject_links", "audit_event_patients")
    }
    assert served == set(OWNERSHIP)
    for table, owner in OWNERSHIP.items():
        if owner is None:
            continue
        columns = table.__table__.c
        assert owner.patient in columns, table
        assert owner.record is None or owner.record in columns, table


@pytest.mark.parametrize(
    "query",
    [
        "query Count { patients(first: 5) { totalCount pageInfo { hasNextPage } } }",
        """query Count($id: ID!) { provider(id: $id) { id
             patients(first: 5) { totalCount pageInfo { hasNextPage } } } }""",
    ],
    ids=["root list", "nested list"],
)
async def test_a_list_read_for_its_count_names_no_patient(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession], query: str
) -> None:
    provider = await factory.provider()
    for _ in range(3):
        await factory.patient(primary_provider_id=provider["id"])

    request_id, body = await send(
        api,
        query,
        {"id": IDS.encode_id(NodeType.PROVIDER, provider["id"])} if "$id" in query else None,
        token=api.token(subject="a"),
    )

    assert "errors" not in body, body
    [audited] = await audit_rows(sessionmaker, request_id)
    assert audited["patient_ids"] == []


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("{ patients(first: 5) { edges { cursor } } }", slice(None)),
        ("{ patients(first: 5) { pageInfo { startCursor } } }", slice(0, 1)),
        ("{ patients(first: 5) { pageInfo { endCursor } } }", slice(-1, None)),
        ("{ patients(first: 5) { pageInfo { startCursor endCursor } } }", slice(0, None, 2)),
        (
            """query Cursors($id: ID!) { provider(id: $id) { id
                 patients(first: 5) { edges { cursor } } } }""",
            slice(None),
        ),
        (
            """query Cursors($id: ID!) { provider(id: $id) { id
                 patients(first: 5) { pageInfo { endCursor } } } }""",
            slice(-1, None),
        ),
    ],
    ids=["edges", "start cursor", "end cursor", "both cursors", "nested edges", "nested end"],
)
async def test_a_list_read_for_its_cursors_names_the_patients_they_point_at(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    query: str,
    shown: slice,
) -> None:
    provider = await factory.provider()
    for _ in range(3):
        await factory.patient(primary_provider_id=provider["id"])
    newest_first = "{ patients(first: 5) { edges { node { id } } } }"
    page = [edge["node"]["id"] for edge in (await api.data(newest_first))["patients"]["edges"]]
    expected = {IDS.decode_typed_id(id_, NodeType.PATIENT, "id") for id_ in page[shown]}
    variables = {"id": IDS.encode_id(NodeType.PROVIDER, provider["id"])} if "$id" in query else None

    # The second time the document is known, and may take the prepared path.
    for _ in range(2):
        request_id, body = await send(api, query, variables, token=api.token(subject="a"))

        assert "errors" not in body, body
        [audited] = await audit_rows(sessionmaker, request_id)
        assert set(audited["patient_ids"]) == expected
