"""Bad input to every mutation: the right code, a message naming the field, and nothing changed.

Every refusal is checked against a snapshot of all of the test tenant's rows (every tenant-scoped
table but the audit trail, which records the refusal) taken before and after the request.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.opaque_ids import NodeType, OpaqueIds
from models.base import Base
from models.enums import DiagnosisType, RecordStatus
from tests.api_client import Api, error_codes
from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")

# Every tenant-scoped table; the audit trail is left out because refusals are audited too.
AUDIT_TRAIL = ("audit_events", "audit_event_patients")
TENANT_TABLES: list[Table] = [
    table
    for table in Base.metadata.sorted_tables
    if "tenant_id" in table.c and table.name not in AUDIT_TRAIL
]

Snapshot = dict[str, list[dict[str, Any]]]


async def snapshot(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str) -> Snapshot:
    """Every row of every tenant table that belongs to ``tenant_id``, in primary-key order."""
    rows: Snapshot = {}
    async with sessionmaker() as session:
        for table in TENANT_TABLES:
            result = await session.execute(
                select(table)
                .where(table.c.tenant_id == tenant_id)
                .order_by(*table.primary_key.columns)
            )
            rows[table.name] = [dict(row._mapping) for row in result]
    return rows


def test_snapshot_covers_every_tenant_table() -> None:
    assert {table.name for table in TENANT_TABLES} >= {
        "providers",
        "patients",
        "medical_records",
        "diagnoses",
        "attachments",
        "record_status_events",
    }
    assert not set(AUDIT_TRAIL) & {table.name for table in TENANT_TABLES}


# --- the documents, and one valid input per mutation --------------------------------------------

DOCUMENTS = {
    "createProvider": """mutation CreateProvider($input: CreateProviderInput!) {
      createProvider(input: $input) { provider { id } } }""",
    "createPatient": """mutation CreatePatient($input: CreatePatientInput!) {
      createPatient(input: $input) { patient { id } } }""",
    "updatePatient": """mutation UpdatePatient($input: UpdatePatientInput!) {
      updatePatient(input: $input) { patient { id version } } }""",
    "createRecord": """mutation CreateRecord($input: CreateRecordInput!) {
      createRecord(input: $input) { record { id } } }""",
    "updateRecord": """mutation UpdateRecord($input: UpdateRecordInput!) {
      updateRecord(input: $input) { record { id version } } }""",
    "addDiagnosis": """mutation AddDiagnosis($input: AddDiagnosisInput!) {
      addDiagnosis(input: $input) { diagnosis { id } } }""",
    "removeDiagnosis": """mutation RemoveDiagnosis($id: ID!) {
      removeDiagnosis(id: $id) { record { id version } } }""",
    "changeRecordStatus": """mutation ChangeRecordStatus($input: ChangeRecordStatusInput!) {
      changeRecordStatus(input: $input) { record { id status } } }""",
}

VISIT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
VALID_NPI = "1234567893"  # the CMS documentation's example NPI
SECRET = "Hildegard"  # stands for patient data: it must never come back in an error


@dataclass(frozen=True)
class Ref:
    """A value of the test's world (an existing MRN, NPI or subject), looked up at run time."""

    key: str


@dataclass(frozen=True)
class World:
    ids: dict[str, str]
    mrn: str
    npi: str
    provider_sub: str
    patient_sub: str


def valid_input(mutation: str, world: World) -> dict[str, Any]:
    inputs: dict[str, dict[str, Any]] = {
        "createProvider": {
            "npi": VALID_NPI,
            "givenName": "Grace",
            "familyName": "Hopper",
            "specialty": "Cardiology",
            "email": "grace@clinic.test",
            "cognitoSub": "dr-new",
        },
        "createPatient": {
            "mrn": "MRN-NEW-1",
            "givenName": "Ada",
            "familyName": "Lovelace",
            "dateOfBirth": "1990-05-17",
            "sex": "FEMALE",
            "email": "ada@mail.test",
            "phone": "+1 555 010 0199",
            "preferredLanguage": "es-MX",
            "primaryProviderId": world.ids["provider"],
            "cognitoSub": "patient-new",
        },
        "updatePatient": {
            "id": world.ids["patient"],
            "expectedVersion": 1,
            "givenName": "Adaline",
            "email": "adaline@mail.test",
            "phone": "+44 20 7946 0958",
            "preferredLanguage": "pt-BR",
            "primaryProviderId": world.ids["provider"],
        },
        "createRecord": {
            "patientId": world.ids["patient"],
            "providerId": world.ids["provider"],
            "recordType": "CONSULTATION",
            "visitDate": VISIT.isoformat(),
            "chiefComplaint": "Headache",
            "notes": "Two days of frontal headache.",
            "staffNote": "Prefers morning appointments.",
            "confidentiality": "RESTRICTED",
            "vitalSigns": {"heartRate": 80, "temperatureC": 37.0, "oxygenSaturation": 98},
            "prescriptions": [{"medication": "Paracetamol", "dosage": "1 g", "frequency": "qds"}],
            "labResults": [{"test": "CRP", "value": "3", "unit": "mg/L"}],
            "followUpDate": "2026-12-01",
        },
        "updateRecord": {
            "id": world.ids["draft"],
            "expectedVersion": 1,
            "notes": "Revised notes.",
            "vitalSigns": {"heartRate": 72},
            "followUpDate": "2026-12-01",
        },
        "addDiagnosis": {
            "recordId": world.ids["draft"],
            "icd10Code": "I10",
            "description": "Essential hypertension",
            "type": "SECONDARY",
        },
        "changeRecordStatus": {
            "id": world.ids["finalized"],
            "status": "AMENDED",
            "expectedVersion": 1,
            "reason": "Dose corrected",
        },
    }
    if mutation == "removeDiagnosis":
        return {"id": world.ids["diagnosis"]}
    return {"input": inputs[mutation]}


@pytest.fixture
async def world(factory: Factory) -> World:
    provider = await factory.provider(cognito_sub="dr-world")
    patient = await factory.patient(cognito_sub="patient-world")
    draft = await factory.record(patient, provider, status=RecordStatus.DRAFT, visit_date=VISIT)
    diagnosis = await factory.diagnosis(draft, type=DiagnosisType.SECONDARY)
    finalized = await factory.record(patient, provider, status=RecordStatus.FINALIZED)

    other = Factory(factory.sessionmaker, f"{factory.tenant_id}-other")
    other_provider = await other.provider()
    other_patient = await other.patient()
    other_record = await other.record(other_patient, other_provider, status=RecordStatus.DRAFT)
    other_diagnosis = await other.diagnosis(other_record)

    def gid(node_type: NodeType, row_id: uuid.UUID) -> str:
        return IDS.encode_id(node_type, row_id)

    ids = {
        "provider": gid(NodeType.PROVIDER, provider["id"]),
        "patient": gid(NodeType.PATIENT, patient["id"]),
        "draft": gid(NodeType.MEDICAL_RECORD, draft["id"]),
        "finalized": gid(NodeType.MEDICAL_RECORD, finalized["id"]),
        "diagnosis": gid(NodeType.DIAGNOSIS, diagnosis["id"]),
        "other:provider": gid(NodeType.PROVIDER, other_provider["id"]),
        "other:patient": gid(NodeType.PATIENT, other_patient["id"]),
        "other:record": gid(NodeType.MEDICAL_RECORD, other_record["id"]),
        "other:diagnosis": gid(NodeType.DIAGNOSIS, other_diagnosis["id"]),
        "unknown:provider": gid(NodeType.PROVIDER, uuid.uuid4()),
        "unknown:patient": gid(NodeType.PATIENT, uuid.uuid4()),
        "unknown:record": gid(NodeType.MEDICAL_RECORD, uuid.uuid4()),
        "unknown:diagnosis": gid(NodeType.DIAGNOSIS, uuid.uuid4()),
    }
    return World(
        ids=ids,
        mrn=patient["mrn"],
        npi=provider["npi"],
        provider_sub="dr-world",
        patient_sub="patient-world",
    )


async def assert_refused(
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    query: str,
    variables: dict[str, Any],
    *,
    code: str,
    field: str,
    secret: str | None = None,
) -> str:
    """Sends a request that must be refused, and checks that it changed nothing.

    The other tenant of the test's world is compared too: ids of its rows are among the inputs.
    """
    tenants = (api.tenant_id, f"{api.tenant_id}-other")
    before = [await snapshot(sessionmaker, tenant) for tenant in tenants]
    body = await api.query(query, variables)
    after = [await snapshot(sessionmaker, tenant) for tenant in tenants]

    assert error_codes(body) == [code], body
    assert body.get("data") is None, body
    message: str = body["errors"][0]["message"]
    assert field in message, f"{message!r} does not name {field}"
    if secret is not None:
        assert secret.lower() not in json.dumps(body).lower(), body
    assert after == before
    return message


# --- the valid inputs are valid: each refusal below is down to the one bad field ----------------


@pytest.mark.parametrize("mutation", list(DOCUMENTS))
async def test_valid_input_is_accepted(
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    world: World,
    mutation: str,
) -> None:
    before = await snapshot(sessionmaker, api.tenant_id)
    body = await api.query(DOCUMENTS[mutation], valid_input(mutation, world))
    assert "errors" not in body, body
    assert await snapshot(sessionmaker, api.tenant_id) != before


# --- one bad field at a time ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    mutation: str
    changes: dict[str, Any]
    field: str
    code: str = "BAD_USER_INPUT"
    secret: str | None = None

    @property
    def id(self) -> str:
        shown = json.dumps(self.changes, default=str)
        return f"{self.mutation}-{self.field}-{shown[:40]}"


LONG_NAME = SECRET * 12  # 108 characters, over the 100 of the name columns
LONG_NOTES = f"{SECRET} was seen today. " * 1000  # about 26,000 characters


def _vitals(mutation: str, name: str, value: float) -> Case:
    return Case(mutation, {"vitalSigns": {name: value}}, f"input.vitalSigns.{name}")


BAD_INPUT: list[Case] = [
    # ICD-10 codes
    Case("addDiagnosis", {"icd10Code": "e11..9"}, "input.icd10Code"),
    Case("addDiagnosis", {"icd10Code": "123"}, "input.icd10Code"),
    Case("addDiagnosis", {"icd10Code": "E11.99999"}, "input.icd10Code"),
    Case("addDiagnosis", {"icd10Code": "   "}, "input.icd10Code"),
    Case("addDiagnosis", {"description": "x" * 501}, "input.description"),
    Case("addDiagnosis", {"description": " "}, "input.description"),
    # NPI
    Case("createProvider", {"npi": "1234567890"}, "input.npi"),
    Case("createProvider", {"npi": "123456789"}, "input.npi"),
    Case("createProvider", {"npi": "12345678930"}, "input.npi"),
    Case("createProvider", {"npi": "12345678a3"}, "input.npi"),
    # dates
    Case("createPatient", {"dateOfBirth": "2099-01-01"}, "input.dateOfBirth"),
    Case(
        "createPatient",
        {"dateOfBirth": (datetime.now(UTC).date() + timedelta(days=2)).isoformat()},
        "input.dateOfBirth",
    ),
    Case("createPatient", {"dateOfBirth": "1899-12-31"}, "input.dateOfBirth"),
    # Refused by the Date scalar while GraphQL coerces $input; its message says "$input ... at
    # .dateOfBirth" in graphql-core's words.
    Case("createPatient", {"dateOfBirth": "1990-02-30"}, ".dateOfBirth"),
    Case(
        "createRecord",
        {"visitDate": (datetime.now(UTC) + timedelta(days=3 * 365)).isoformat()},
        "input.visitDate",
    ),
    Case(
        "createRecord",
        {"visitDate": (datetime.now(UTC) + timedelta(days=3)).isoformat()},
        "input.visitDate",
    ),
    Case("createRecord", {"visitDate": "2026-11-20T09:30:00"}, ".visitDate"),  # no UTC offset
    Case("createRecord", {"followUpDate": "2026-11-19"}, "input.followUpDate"),
    Case("createRecord", {"followUpDate": "2032-01-01"}, "input.followUpDate"),
    Case("updateRecord", {"followUpDate": "2026-11-19"}, "input.followUpDate"),
    Case("updateRecord", {"followUpDate": "2031-11-21"}, "input.followUpDate"),
    # vital signs, creating and updating
    *[
        _vitals(mutation, name, value)
        for mutation in ("createRecord", "updateRecord")
        for name, value in (
            ("heartRate", 19),
            ("heartRate", 301),
            ("oxygenSaturation", 101),
            ("temperatureC", 24.9),
            ("temperatureC", 45.1),
        )
    ],
    Case(
        "createRecord",
        {"vitalSigns": {"systolicBp": 80, "diastolicBp": 90}},
        "input.vitalSigns.diastolicBp",
    ),
    # contact details
    Case("createPatient", {"email": f"{SECRET}@@mail.test"}, "input.email", secret=SECRET),
    Case("createPatient", {"email": f"{SECRET}.mail.test"}, "input.email", secret=SECRET),
    Case("createPatient", {"email": f"{SECRET}@localhost"}, "input.email", secret=SECRET),
    Case("createPatient", {"phone": f"call {SECRET}"}, "input.phone", secret=SECRET),
    Case("createPatient", {"phone": "12"}, "input.phone"),
    Case("createProvider", {"email": f"{SECRET} @clinic.test"}, "input.email", secret=SECRET),
    Case("updatePatient", {"email": f"{SECRET}@"}, "input.email", secret=SECRET),
    Case("updatePatient", {"phone": f"+1 {SECRET}"}, "input.phone", secret=SECRET),
    Case("updatePatient", {"phone": "1" * 16}, "input.phone"),
    Case("createPatient", {"preferredLanguage": "xx-YY"}, "input.preferredLanguage"),
    Case("createPatient", {"preferredLanguage": "en-US-" + "a" * 30}, "input.preferredLanguage"),
    Case("createPatient", {"preferredLanguage": "español"}, "input.preferredLanguage"),
    Case(
        "updatePatient",
        {"preferredLanguage": f"{SECRET}"},
        "input.preferredLanguage",
        secret=SECRET,
    ),
    Case("updatePatient", {"preferredLanguage": "en\x00"}, "input.preferredLanguage"),
    # names and other text
    Case("createPatient", {"givenName": LONG_NAME}, "input.givenName", secret=SECRET),
    Case("createPatient", {"familyName": LONG_NAME}, "input.familyName", secret=SECRET),
    Case("createPatient", {"givenName": "   "}, "input.givenName"),
    Case("createPatient", {"givenName": f"{SECRET}\x00"}, "input.givenName", secret=SECRET),
    Case("createPatient", {"familyName": f"{SECRET}\nSmith"}, "input.familyName", secret=SECRET),
    Case("createPatient", {"mrn": "M" * 65}, "input.mrn"),
    Case("createPatient", {"mrn": "MRN 001"}, "input.mrn"),
    Case("createProvider", {"givenName": LONG_NAME}, "input.givenName", secret=SECRET),
    Case("createProvider", {"familyName": LONG_NAME}, "input.familyName", secret=SECRET),
    Case("createProvider", {"specialty": "s" * 101}, "input.specialty"),
    Case("updatePatient", {"givenName": LONG_NAME}, "input.givenName", secret=SECRET),
    Case("updatePatient", {"familyName": LONG_NAME}, "input.familyName", secret=SECRET),
    Case("updatePatient", {"familyName": None}, "input.familyName"),
    Case("createRecord", {"notes": LONG_NOTES}, "input.notes", secret=SECRET),
    Case("createRecord", {"notes": f"{SECRET}\x07"}, "input.notes", secret=SECRET),
    Case("createRecord", {"chiefComplaint": SECRET * 56}, "input.chiefComplaint", secret=SECRET),
    Case("updateRecord", {"notes": LONG_NOTES}, "input.notes", secret=SECRET),
    Case("createRecord", {"staffNote": LONG_NOTES}, "input.staffNote", secret=SECRET),
    Case("createRecord", {"staffNote": f"{SECRET}\x00"}, "input.staffNote", secret=SECRET),
    Case("updateRecord", {"staffNote": LONG_NOTES}, "input.staffNote", secret=SECRET),
    Case("createRecord", {"confidentiality": None}, "input.confidentiality"),
    Case("updateRecord", {"confidentiality": None}, "input.confidentiality"),
    Case("updateRecord", {"chiefComplaint": SECRET * 56}, "input.chiefComplaint", secret=SECRET),
    Case(
        "createRecord",
        {"prescriptions": [{"medication": SECRET * 23, "dosage": "1 g", "frequency": "qds"}]},
        "input.prescriptions[0].medication",
        secret=SECRET,
    ),
    Case(
        "updateRecord",
        {
            "prescriptions": [
                {"medication": "Aspirin", "dosage": "75 mg", "frequency": "daily"},
                {
                    "medication": "Aspirin",
                    "dosage": "75 mg",
                    "frequency": "daily",
                    "durationDays": 0,
                },
            ]
        },
        "input.prescriptions[1].durationDays",
    ),
    Case(
        "createRecord",
        {"labResults": [{"test": "CRP", "value": SECRET * 23}]},
        "input.labResults[0].value",
        secret=SECRET,
    ),
    Case("changeRecordStatus", {"reason": f"{SECRET} " * 200}, "input.reason", secret=SECRET),
    Case("changeRecordStatus", {"reason": None}, "input.reason"),
    Case("changeRecordStatus", {"reason": "  "}, "input.reason"),
    # uniqueness within the tenant
    Case("createPatient", {"mrn": Ref("mrn")}, "input.mrn", code="CONFLICT"),
    Case("createProvider", {"npi": Ref("npi")}, "input.npi", code="CONFLICT"),
    Case("createProvider", {"cognitoSub": Ref("provider_sub")}, "input.cognitoSub", "CONFLICT"),
    Case("createPatient", {"cognitoSub": Ref("patient_sub")}, "input.cognitoSub", "CONFLICT"),
    # a subject is linked once, to a provider or a patient
    Case("createPatient", {"cognitoSub": Ref("provider_sub")}, "input.cognitoSub", "CONFLICT"),
    Case("createProvider", {"cognitoSub": Ref("patient_sub")}, "input.cognitoSub", "CONFLICT"),
]


def _with_world(changes: dict[str, Any], world: World) -> dict[str, Any]:
    scalars = {
        "mrn": world.mrn,
        "npi": world.npi,
        "provider_sub": world.provider_sub,
        "patient_sub": world.patient_sub,
    }
    return {
        key: scalars[value.key] if isinstance(value, Ref) and value.key in scalars else value
        for key, value in changes.items()
    }


@pytest.mark.parametrize("case", BAD_INPUT, ids=[case.id for case in BAD_INPUT])
async def test_bad_input_is_refused_and_changes_nothing(
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    world: World,
    case: Case,
) -> None:
    variables = valid_input(case.mutation, world)
    variables["input"] = variables["input"] | _with_world(case.changes, world)
    await assert_refused(
        api,
        sessionmaker,
        DOCUMENTS[case.mutation],
        variables,
        code=case.code,
        field=case.field,
        secret=case.secret,
    )


async def test_same_mrn_and_npi_in_another_tenant_are_fine(
    api: Api, factory: Factory, world: World
) -> None:
    other_admin = api.token(tenant_id=f"{factory.tenant_id}-elsewhere")
    patient = valid_input("createPatient", world)["input"]
    patient.update(mrn=world.mrn, primaryProviderId=None)
    body = await api.query(DOCUMENTS["createPatient"], {"input": patient}, token=other_admin)
    assert "errors" not in body, body
    provider = valid_input("createProvider", world)["input"] | {"npi": world.npi}
    body = await api.query(DOCUMENTS["createProvider"], {"input": provider}, token=other_admin)
    assert "errors" not in body, body


# --- ids: unknown, another tenant's, malformed, of another type -----------------------------------

# (mutation, path of the id within the variables, the kind of node the id must name)
ID_FIELDS: list[tuple[str, str, str]] = [
    ("updatePatient", "input.id", "patient"),
    ("updatePatient", "input.primaryProviderId", "provider"),
    ("createPatient", "input.primaryProviderId", "provider"),
    ("createRecord", "input.patientId", "patient"),
    ("createRecord", "input.providerId", "provider"),
    ("updateRecord", "input.id", "record"),
    ("addDiagnosis", "input.recordId", "record"),
    ("removeDiagnosis", "id", "diagnosis"),
    ("changeRecordStatus", "input.id", "record"),
]
WRONG_KIND = {
    "patient": "provider",
    "provider": "patient",
    "record": "patient",
    "diagnosis": "draft",
}


def _set_path(variables: dict[str, Any], path: str, value: str) -> None:
    *parents, last = path.split(".")
    target = variables
    for name in parents:
        target = target[name]
    target[last] = value


def _id_cases() -> list[tuple[str, str, str, str, str]]:
    cases = []
    for mutation, path, kind in ID_FIELDS:
        cases.append((mutation, path, f"unknown:{kind}", "NOT_FOUND", "unknown"))
        cases.append((mutation, path, f"other:{kind}", "NOT_FOUND", "other-tenant"))
        cases.append((mutation, path, "garbage", "BAD_USER_INPUT", "malformed"))
        cases.append((mutation, path, WRONG_KIND[kind], "BAD_USER_INPUT", "wrong-type"))
    return cases


ID_CASES = _id_cases()


@pytest.mark.parametrize(
    ("mutation", "path", "value", "code", "label"),
    ID_CASES,
    ids=[f"{m}-{p}-{label}" for m, p, _, _, label in ID_CASES],
)
async def test_bad_ids_are_refused_and_change_nothing(
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    world: World,
    mutation: str,
    path: str,
    value: str,
    code: str,
    label: str,
) -> None:
    variables = valid_input(mutation, world)
    _set_path(variables, path, world.ids.get(value, value))
    message = await assert_refused(
        api, sessionmaker, DOCUMENTS[mutation], variables, code=code, field=path
    )
    if label == "malformed":
        assert "malformed id" in message
    if label == "wrong-type":
        assert "not a" in message
    if label in ("unknown", "other-tenant"):
        assert "not found" in message
