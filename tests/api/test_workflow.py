"""The record workflow through the API: transitions, their rules, history, versions and edits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.opaque_ids import NodeType, OpaqueIds
from models import Diagnosis, MedicalRecord, Patient, RecordStatusEvent
from models.enums import DiagnosisType, RecordStatus
from tests.api_client import Api, error_codes
from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")
REASON = "documented correction of the visit note"

DRAFT = RecordStatus.DRAFT
FINALIZED = RecordStatus.FINALIZED
AMENDED = RecordStatus.AMENDED
IN_ERROR = RecordStatus.ENTERED_IN_ERROR

ALLOWED = {
    (DRAFT, FINALIZED),
    (DRAFT, IN_ERROR),
    (FINALIZED, AMENDED),
    (FINALIZED, IN_ERROR),
    (AMENDED, AMENDED),
    (AMENDED, IN_ERROR),
}
ALL_PAIRS = [(current, target) for current in RecordStatus for target in RecordStatus]

RECORD_FIELDS = """id status version finalizedAt chiefComplaint notes followUpDate
  vitalSigns { heartRate temperatureC oxygenSaturation systolicBp }
  prescriptions { medication dosage frequency }
  labResults { test value unit }"""

CHANGE_STATUS = f"""mutation ChangeStatus($input: ChangeRecordStatusInput!) {{
  changeRecordStatus(input: $input) {{ record {{ {RECORD_FIELDS} }} }} }}"""
UPDATE_RECORD = f"""mutation UpdateRecord($input: UpdateRecordInput!) {{
  updateRecord(input: $input) {{ record {{ {RECORD_FIELDS} }} }} }}"""
ADD_DIAGNOSIS = """mutation AddDiagnosis($input: AddDiagnosisInput!) {
  addDiagnosis(input: $input) { diagnosis { id type record { id version } } } }"""
REMOVE_DIAGNOSIS = """mutation RemoveDiagnosis($id: ID!) {
  removeDiagnosis(id: $id) { record { id version diagnoses { id } } } }"""
CREATE_RECORD = """mutation CreateRecord($input: CreateRecordInput!) {
  createRecord(input: $input) { record { id status version finalizedAt } } }"""
UPDATE_PATIENT = """mutation UpdatePatient($input: UpdatePatientInput!) {
  updatePatient(input: $input) { patient { id version givenName familyName email phone
    primaryProvider { id } } } }"""
HISTORY = """query History($id: ID!) { record(id: $id) { status version finalizedAt
  statusHistory { sequence previousStatus status changedBy reason changedAt } } }"""


def record_id(row: dict[str, Any]) -> str:
    return IDS.encode_id(NodeType.MEDICAL_RECORD, row["id"])


def patient_id(row: dict[str, Any]) -> str:
    return IDS.encode_id(NodeType.PATIENT, row["id"])


def provider_id(row: dict[str, Any]) -> str:
    return IDS.encode_id(NodeType.PROVIDER, row["id"])


def diagnosis_id(row: dict[str, Any]) -> str:
    return IDS.encode_id(NodeType.DIAGNOSIS, row["id"])


def status_input(
    row: dict[str, Any], status: RecordStatus, version: int = 1, reason: str | None = REASON
) -> dict[str, Any]:
    values: dict[str, Any] = {"id": record_id(row), "status": status.value}
    values["expectedVersion"] = version
    if reason is not None:
        values["reason"] = reason
    return {"input": values}


async def stored_record(
    sessionmaker: async_sessionmaker[AsyncSession], row_id: uuid.UUID
) -> dict[str, Any]:
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(*MedicalRecord.__table__.c).where(MedicalRecord.id == row_id)
            )
        ).one()
    return dict(row._mapping)


async def stored_events(
    sessionmaker: async_sessionmaker[AsyncSession], row_id: uuid.UUID
) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(*RecordStatusEvent.__table__.c)
                .where(RecordStatusEvent.record_id == row_id)
                .order_by(RecordStatusEvent.sequence)
            )
        ).all()
    return [dict(row._mapping) for row in rows]


async def stored_diagnoses(
    sessionmaker: async_sessionmaker[AsyncSession], row_id: uuid.UUID
) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(*Diagnosis.__table__.c)
                .where(Diagnosis.record_id == row_id)
                .order_by(Diagnosis.id)
            )
        ).all()
    return [dict(row._mapping) for row in rows]


async def stored_patient(
    sessionmaker: async_sessionmaker[AsyncSession], row_id: uuid.UUID
) -> dict[str, Any]:
    async with sessionmaker() as session:
        row = (
            await session.execute(select(*Patient.__table__.c).where(Patient.id == row_id))
        ).one()
    return dict(row._mapping)


async def draft_with_primary(factory: Factory, **overrides: Any) -> dict[str, Any]:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=DRAFT, **overrides)
    await factory.diagnosis(record)
    return record


# --- the full status x status table ----------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"), ALL_PAIRS, ids=[f"{c.value}->{t.value}" for c, t in ALL_PAIRS]
)
async def test_status_transition_table(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    current: RecordStatus,
    target: RecordStatus,
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=current)
    await factory.diagnosis(record)  # exactly one PRIMARY, so finalizing may succeed
    before = await stored_record(sessionmaker, record["id"])

    body = await api.query(CHANGE_STATUS, status_input(record, target))

    after = await stored_record(sessionmaker, record["id"])
    events = await stored_events(sessionmaker, record["id"])
    if (current, target) in ALLOWED:
        assert "errors" not in body, body
        changed = body["data"]["changeRecordStatus"]["record"]
        assert changed["status"] == target.value
        assert changed["version"] == 2
        assert (after["status"], after["version"]) == (target, 2)
        if target is FINALIZED:
            assert after["finalized_at"] is not None
            assert changed["finalizedAt"] is not None
        else:
            assert after["finalized_at"] == before["finalized_at"]
        assert [
            (e["previous_status"], e["status"], e["changed_by"], e["reason"]) for e in events
        ] == [(current, target, "admin-subject", REASON)]
    else:
        assert error_codes(body) == ["INVALID_TRANSITION"]
        message = body["errors"][0]["message"]
        assert current.value in message
        assert target.value in message
        assert body["data"] is None
        assert after == before
        assert events == []


# --- finalizing needs exactly one PRIMARY diagnosis ---------------------------------------------


@pytest.mark.parametrize(
    ("diagnoses", "finalized"),
    [
        ((), False),
        ((DiagnosisType.SECONDARY,), False),
        ((DiagnosisType.PRIMARY,), True),
        ((DiagnosisType.PRIMARY, DiagnosisType.SECONDARY, DiagnosisType.SECONDARY), True),
        # Two PRIMARY rows cannot be made through the API; the rule still holds for old data.
        ((DiagnosisType.PRIMARY, DiagnosisType.PRIMARY), False),
    ],
    ids=["none", "secondary-only", "one-primary", "primary-and-secondaries", "two-primaries"],
)
async def test_finalizing_needs_exactly_one_primary(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    diagnoses: tuple[DiagnosisType, ...],
    finalized: bool,
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=DRAFT)
    for kind in diagnoses:
        await factory.diagnosis(record, type=kind)
    before = await stored_record(sessionmaker, record["id"])

    body = await api.query(CHANGE_STATUS, status_input(record, FINALIZED, reason=None))

    if finalized:
        assert "errors" not in body, body
        assert body["data"]["changeRecordStatus"]["record"]["status"] == "FINALIZED"
        assert len(await stored_events(sessionmaker, record["id"])) == 1
    else:
        assert error_codes(body) == ["INVALID_TRANSITION"]
        primaries = diagnoses.count(DiagnosisType.PRIMARY)
        message = body["errors"][0]["message"]
        assert "PRIMARY" in message
        assert str(primaries) in message
        assert await stored_record(sessionmaker, record["id"]) == before
        assert await stored_events(sessionmaker, record["id"]) == []


async def test_second_primary_diagnosis_is_refused(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    record = await draft_with_primary(factory)
    before = await stored_record(sessionmaker, record["id"])
    diagnoses = await stored_diagnoses(sessionmaker, record["id"])

    body = await api.query(
        ADD_DIAGNOSIS,
        {
            "input": {
                "recordId": record_id(record),
                "icd10Code": "I10",
                "description": "Essential hypertension",
                "type": "PRIMARY",
            }
        },
    )

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "input.type" in body["errors"][0]["message"]
    assert await stored_diagnoses(sessionmaker, record["id"]) == diagnoses
    assert await stored_record(sessionmaker, record["id"]) == before

    # A SECONDARY one is still welcome, and the record stays finalizable.
    added = await api.data(
        ADD_DIAGNOSIS,
        {
            "input": {
                "recordId": record_id(record),
                "icd10Code": "I10",
                "description": "Essential hypertension",
                "type": "SECONDARY",
            }
        },
    )
    assert added["addDiagnosis"]["diagnosis"]["type"] == "SECONDARY"
    assert added["addDiagnosis"]["diagnosis"]["record"]["version"] == 2
    finalized = await api.data(CHANGE_STATUS, status_input(record, FINALIZED, version=2))
    assert finalized["changeRecordStatus"]["record"]["status"] == "FINALIZED"


# --- reasons ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"),
    [(FINALIZED, AMENDED), (AMENDED, AMENDED), (DRAFT, IN_ERROR), (FINALIZED, IN_ERROR)],
    ids=["finalized->amended", "amended->amended", "draft->in-error", "finalized->in-error"],
)
@pytest.mark.parametrize("reason", [None, "", "   \n\t "], ids=["absent", "empty", "blank"])
async def test_reason_is_required_for_amended_and_entered_in_error(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    current: RecordStatus,
    target: RecordStatus,
    reason: str | None,
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=current)
    await factory.diagnosis(record)
    before = await stored_record(sessionmaker, record["id"])
    variables = status_input(record, target, reason=None)
    if reason is not None:
        variables["input"]["reason"] = reason

    body = await api.query(CHANGE_STATUS, variables)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "input.reason" in body["errors"][0]["message"]
    assert await stored_record(sessionmaker, record["id"]) == before
    assert await stored_events(sessionmaker, record["id"]) == []


async def test_reason_is_optional_when_finalizing_and_stored_trimmed(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = await draft_with_primary(factory)
    await api.data(CHANGE_STATUS, status_input(first, FINALIZED, reason=None))
    assert (await stored_events(sessionmaker, first["id"]))[0]["reason"] is None

    second = await draft_with_primary(factory)
    await api.data(CHANGE_STATUS, status_input(second, FINALIZED))
    await api.data(CHANGE_STATUS, status_input(second, AMENDED, version=2, reason="  typo fixed  "))
    events = await stored_events(sessionmaker, second["id"])
    assert [e["reason"] for e in events] == [REASON, "typo fixed"]


async def test_overlong_reason_is_refused(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=FINALIZED)
    body = await api.query(CHANGE_STATUS, status_input(record, AMENDED, reason="x" * 1001))
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "input.reason" in body["errors"][0]["message"]
    assert (await stored_record(sessionmaker, record["id"]))["status"] is FINALIZED


# --- who may move a record ---------------------------------------------------------------------


@pytest.mark.parametrize("current", [DRAFT, FINALIZED, AMENDED])
async def test_only_admins_mark_records_entered_in_error(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    current: RecordStatus,
) -> None:
    provider = await factory.provider(cognito_sub="dr-owner")
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=current)
    before = await stored_record(sessionmaker, record["id"])
    owner = api.token(subject="dr-owner", groups=("provider",))

    body = await api.query(CHANGE_STATUS, status_input(record, IN_ERROR), token=owner)

    assert error_codes(body) == ["FORBIDDEN"]
    assert await stored_record(sessionmaker, record["id"]) == before
    assert await stored_events(sessionmaker, record["id"]) == []


async def test_providers_move_only_their_own_records(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner = await factory.provider(cognito_sub="dr-owner")
    await factory.provider(cognito_sub="dr-other")
    patient = await factory.patient()
    finalized = await factory.record(patient, owner, status=FINALIZED)
    draft = await factory.record(patient, owner, status=DRAFT)
    await factory.diagnosis(draft)
    other = api.token(subject="dr-other", groups=("provider",))

    # A finalized record is readable by every provider, but only its author amends it.
    body = await api.query(CHANGE_STATUS, status_input(finalized, AMENDED), token=other)
    assert error_codes(body) == ["FORBIDDEN"]
    # Another provider's draft is invisible: it behaves as if it did not exist.
    body = await api.query(CHANGE_STATUS, status_input(draft, FINALIZED), token=other)
    assert error_codes(body) == ["NOT_FOUND"]
    for row in (finalized, draft):
        assert (await stored_record(sessionmaker, row["id"]))["version"] == 1

    mine = api.token(subject="dr-owner", groups=("provider",))
    data = await api.data(CHANGE_STATUS, status_input(finalized, AMENDED), token=mine)
    assert data["changeRecordStatus"]["record"]["status"] == "AMENDED"
    data = await api.data(CHANGE_STATUS, status_input(draft, FINALIZED), token=mine)
    assert data["changeRecordStatus"]["record"]["status"] == "FINALIZED"


# --- only drafts are edited in place -----------------------------------------------------------


@pytest.mark.parametrize("status", [FINALIZED, AMENDED, IN_ERROR])
async def test_only_draft_records_take_edits(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    status: RecordStatus,
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=status)
    diagnosis = await factory.diagnosis(record, type=DiagnosisType.SECONDARY)
    before = await stored_record(sessionmaker, record["id"])
    diagnoses = await stored_diagnoses(sessionmaker, record["id"])

    attempts: list[tuple[str, dict[str, Any]]] = [
        (UPDATE_RECORD, {"input": {"id": record_id(record), "expectedVersion": 1, "notes": "x"}}),
        (
            ADD_DIAGNOSIS,
            {
                "input": {
                    "recordId": record_id(record),
                    "icd10Code": "I10",
                    "description": "Essential hypertension",
                    "type": "SECONDARY",
                }
            },
        ),
        (REMOVE_DIAGNOSIS, {"id": diagnosis_id(diagnosis)}),
    ]
    for query, variables in attempts:
        body = await api.query(query, variables)
        assert error_codes(body) == ["INVALID_TRANSITION"], query
        assert "DRAFT" in body["errors"][0]["message"]
        assert status.value in body["errors"][0]["message"]

    assert await stored_record(sessionmaker, record["id"]) == before
    assert await stored_diagnoses(sessionmaker, record["id"]) == diagnoses


async def test_draft_edits_bump_the_record_version(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=DRAFT)
    rid = record_id(record)
    created_state = await stored_record(sessionmaker, record["id"])

    updated = await api.data(
        UPDATE_RECORD, {"input": {"id": rid, "expectedVersion": 1, "notes": "first edit"}}
    )
    assert updated["updateRecord"]["record"]["version"] == 2

    added = await api.data(
        ADD_DIAGNOSIS,
        {
            "input": {
                "recordId": rid,
                "icd10Code": "e11.9",
                "description": "Type 2 diabetes mellitus",
                "type": "PRIMARY",
            }
        },
    )
    assert added["addDiagnosis"]["diagnosis"]["record"]["version"] == 3
    diagnosis_gid = added["addDiagnosis"]["diagnosis"]["id"]
    assert [d["icd10_code"] for d in await stored_diagnoses(sessionmaker, record["id"])] == [
        "E11.9"
    ]

    removed = await api.data(REMOVE_DIAGNOSIS, {"id": diagnosis_gid})
    assert removed["removeDiagnosis"]["record"]["version"] == 4
    assert removed["removeDiagnosis"]["record"]["diagnoses"] == []

    stored = await stored_record(sessionmaker, record["id"])
    assert stored["version"] == 4
    assert stored["notes"] == "first edit"
    assert stored["updated_at"] > created_state["updated_at"]
    # Edits are not status changes.
    assert await stored_events(sessionmaker, record["id"]) == []


@pytest.mark.parametrize("mutation", ["updateRecord", "changeRecordStatus", "updatePatient"])
@pytest.mark.parametrize("stale", [0, 2, 7])
async def test_stale_expected_version_is_a_conflict(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    mutation: str,
    stale: int,
) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=DRAFT)
    await factory.diagnosis(record)
    if mutation == "updateRecord":
        query = UPDATE_RECORD
        variables: dict[str, Any] = {
            "input": {"id": record_id(record), "expectedVersion": stale, "notes": "late edit"}
        }
    elif mutation == "changeRecordStatus":
        query, variables = CHANGE_STATUS, status_input(record, FINALIZED, version=stale)
    else:
        query = UPDATE_PATIENT
        variables = {
            "input": {"id": patient_id(patient), "expectedVersion": stale, "givenName": "Late"}
        }
    record_before = await stored_record(sessionmaker, record["id"])
    patient_before = await stored_patient(sessionmaker, patient["id"])

    body = await api.query(query, variables)

    assert error_codes(body) == ["CONFLICT"]
    message = body["errors"][0]["message"]
    assert "input.expectedVersion" in message
    assert "version 1" in message
    assert await stored_record(sessionmaker, record["id"]) == record_before
    assert await stored_patient(sessionmaker, patient["id"]) == patient_before
    assert await stored_events(sessionmaker, record["id"]) == []


# --- status history, versions and finalizedAt over a record's whole life ------------------------


async def test_status_history_of_a_records_life(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    provider = await factory.provider(cognito_sub="dr-owner")
    patient = await factory.patient()
    dr = api.token(subject="dr-owner", groups=("provider",))
    admin = api.token(subject="admin-7", groups=("admin",))

    created = await api.data(
        CREATE_RECORD,
        {
            "input": {
                "patientId": patient_id(patient),
                "recordType": "CONSULTATION",
                "visitDate": "2026-11-20T09:30:00+00:00",
                "chiefComplaint": "Polyuria",
            }
        },
        token=dr,
    )
    record = created["createRecord"]["record"]
    assert (record["status"], record["version"], record["finalizedAt"]) == ("DRAFT", 1, None)
    rid = record["id"]
    row_id = IDS.decode_typed_id(rid, NodeType.MEDICAL_RECORD, "id")
    assert (await stored_record(sessionmaker, row_id))["provider_id"] == provider["id"]

    added = await api.data(
        ADD_DIAGNOSIS,
        {
            "input": {
                "recordId": rid,
                "icd10Code": "E11.9",
                "description": "Type 2 diabetes mellitus",
                "type": "PRIMARY",
            }
        },
        token=dr,
    )
    assert added["addDiagnosis"]["diagnosis"]["record"]["version"] == 2

    def change(status: str, version: int, reason: str | None) -> dict[str, Any]:
        values: dict[str, Any] = {"id": rid, "status": status, "expectedVersion": version}
        if reason is not None:
            values["reason"] = reason
        return {"input": values}

    started = datetime.now(UTC)
    finalized = (await api.data(CHANGE_STATUS, change("FINALIZED", 2, None), token=dr))[
        "changeRecordStatus"
    ]["record"]
    ended = datetime.now(UTC)
    assert (finalized["status"], finalized["version"]) == ("FINALIZED", 3)
    finalized_at = datetime.fromisoformat(finalized["finalizedAt"])
    # Set by the database clock during the request; allow the two clocks a little skew.
    assert (started - finalized_at).total_seconds() < 5
    assert (finalized_at - ended).total_seconds() < 5

    amended = (await api.data(CHANGE_STATUS, change("AMENDED", 3, "dose corrected"), token=dr))[
        "changeRecordStatus"
    ]["record"]
    assert (amended["status"], amended["version"]) == ("AMENDED", 4)
    assert amended["finalizedAt"] == finalized["finalizedAt"]
    again = (await api.data(CHANGE_STATUS, change("AMENDED", 4, "lab added"), token=dr))[
        "changeRecordStatus"
    ]["record"]
    assert (again["status"], again["version"]) == ("AMENDED", 5)
    voided = (
        await api.data(CHANGE_STATUS, change("ENTERED_IN_ERROR", 5, "wrong patient"), token=admin)
    )["changeRecordStatus"]["record"]
    assert (voided["status"], voided["version"]) == ("ENTERED_IN_ERROR", 6)
    assert voided["finalizedAt"] == finalized["finalizedAt"]

    read = (await api.data(HISTORY, {"id": rid}))["record"]
    history = read["statusHistory"]
    assert [(e["previousStatus"], e["status"], e["changedBy"], e["reason"]) for e in history] == [
        (None, "DRAFT", "dr-owner", None),
        ("DRAFT", "FINALIZED", "dr-owner", None),
        ("FINALIZED", "AMENDED", "dr-owner", "dose corrected"),
        ("AMENDED", "AMENDED", "dr-owner", "lab added"),
        ("AMENDED", "ENTERED_IN_ERROR", "admin-7", "wrong patient"),
    ]
    sequences = [int(e["sequence"]) for e in history]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    changed_at = [datetime.fromisoformat(e["changedAt"]) for e in history]
    assert changed_at == sorted(changed_at)
    assert read["version"] == 6

    # The API shows exactly the rows of record_status_events, in sequence order.
    stored = await stored_events(sessionmaker, row_id)
    assert [str(e["sequence"]) for e in stored] == [e["sequence"] for e in history]
    assert {e["tenant_id"] for e in stored} == {factory.tenant_id}

    # Nothing moves an ENTERED_IN_ERROR record any more.
    for target in RecordStatus:
        body = await api.query(CHANGE_STATUS, change(target.value, 6, "retry"), token=admin)
        assert error_codes(body) == ["INVALID_TRANSITION"]
    assert len(await stored_events(sessionmaker, row_id)) == 5


async def test_status_history_is_per_record_and_sequences_interleave(
    api: Api, factory: Factory
) -> None:
    first = await draft_with_primary(factory)
    second = await draft_with_primary(factory)
    await api.data(CHANGE_STATUS, status_input(first, FINALIZED))
    await api.data(CHANGE_STATUS, status_input(second, FINALIZED))
    await api.data(CHANGE_STATUS, status_input(first, AMENDED, version=2))

    one = (await api.data(HISTORY, {"id": record_id(first)}))["record"]["statusHistory"]
    two = (await api.data(HISTORY, {"id": record_id(second)}))["record"]["statusHistory"]
    assert [e["status"] for e in one] == ["FINALIZED", "AMENDED"]
    assert [e["status"] for e in two] == ["FINALIZED"]
    assert int(one[0]["sequence"]) < int(two[0]["sequence"]) < int(one[1]["sequence"])


async def test_finalized_at_is_null_until_finalized(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    record = await draft_with_primary(factory)
    assert (await api.data(HISTORY, {"id": record_id(record)}))["record"]["finalizedAt"] is None
    # Voiding a draft does not finalize it.
    voided = await api.data(CHANGE_STATUS, status_input(record, IN_ERROR))
    assert voided["changeRecordStatus"]["record"]["finalizedAt"] is None
    assert (await stored_record(sessionmaker, record["id"]))["finalized_at"] is None


# --- updateRecord / updatePatient: explicit null clears, absence keeps ---------------------------

FULL_CONTENT: dict[str, Any] = {
    "chiefComplaint": "Chest pain",
    "notes": "Pain on exertion.\nNo radiation.",
    "vitalSigns": {"heartRate": 88, "temperatureC": 37.2, "oxygenSaturation": 97},
    "prescriptions": [{"medication": "Aspirin", "dosage": "75 mg", "frequency": "daily"}],
    "labResults": [{"test": "Troponin", "value": "0.01", "unit": "ng/mL"}],
    "followUpDate": "2026-12-01",
}
FULL_CONTENT_OUT: dict[str, Any] = {
    "chiefComplaint": "Chest pain",
    "notes": "Pain on exertion.\nNo radiation.",
    "vitalSigns": {
        "heartRate": 88,
        "temperatureC": 37.2,
        "oxygenSaturation": 97,
        "systolicBp": None,
    },
    "prescriptions": [{"medication": "Aspirin", "dosage": "75 mg", "frequency": "daily"}],
    "labResults": [{"test": "Troponin", "value": "0.01", "unit": "ng/mL"}],
    "followUpDate": "2026-12-01",
}
CLEARED_OUT: dict[str, Any] = {
    "chiefComplaint": None,
    "notes": None,
    "vitalSigns": None,
    "prescriptions": [],
    "labResults": [],
    "followUpDate": None,
}


def _content(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in FULL_CONTENT_OUT}


async def _draft_with_content(api: Api, factory: Factory) -> str:
    provider = await factory.provider()
    patient = await factory.patient()
    record = await factory.record(
        patient,
        provider,
        status=DRAFT,
        visit_date=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
    )
    rid = record_id(record)
    filled = await api.data(
        UPDATE_RECORD, {"input": {"id": rid, "expectedVersion": 1, **FULL_CONTENT}}
    )
    assert _content(filled["updateRecord"]["record"]) == FULL_CONTENT_OUT
    return rid


async def test_update_record_leaves_absent_fields_alone(api: Api, factory: Factory) -> None:
    rid = await _draft_with_content(api, factory)
    expected = dict(FULL_CONTENT_OUT)
    changes = [
        ("notes", "Only the notes change.", "Only the notes change."),
        ("chiefComplaint", "  Dyspnoea  ", "Dyspnoea"),
        ("followUpDate", "2026-12-15", "2026-12-15"),
        (
            "vitalSigns",
            {"systolicBp": 120},
            {**dict.fromkeys(("heartRate", "temperatureC", "oxygenSaturation")), "systolicBp": 120},
        ),
    ]
    for version, (field, value, shown) in enumerate(changes, start=2):
        data = await api.data(
            UPDATE_RECORD, {"input": {"id": rid, "expectedVersion": version, field: value}}
        )
        record = data["updateRecord"]["record"]
        assert record["version"] == version + 1
        expected[field] = shown
        assert _content(record) == expected


async def test_update_record_with_only_the_version_changes_nothing_but_the_version(
    api: Api, factory: Factory
) -> None:
    rid = await _draft_with_content(api, factory)
    data = await api.data(UPDATE_RECORD, {"input": {"id": rid, "expectedVersion": 2}})
    record = data["updateRecord"]["record"]
    assert record["version"] == 3
    assert _content(record) == FULL_CONTENT_OUT


@pytest.mark.parametrize("field", list(FULL_CONTENT))
async def test_update_record_explicit_null_clears_one_field(
    api: Api, factory: Factory, field: str
) -> None:
    rid = await _draft_with_content(api, factory)
    data = await api.data(UPDATE_RECORD, {"input": {"id": rid, "expectedVersion": 2, field: None}})
    record = data["updateRecord"]["record"]
    expected = dict(FULL_CONTENT_OUT)
    expected[field] = CLEARED_OUT[field]
    assert _content(record) == expected
    assert record["version"] == 3
    # What the API answered is what is stored.
    read = await api.data(
        f"query($id: ID!) {{ record(id: $id) {{ {RECORD_FIELDS} }} }}", {"id": rid}
    )
    assert _content(read["record"]) == expected


async def test_update_record_explicit_nulls_clear_everything(api: Api, factory: Factory) -> None:
    rid = await _draft_with_content(api, factory)
    nulls = dict.fromkeys(FULL_CONTENT)
    data = await api.data(UPDATE_RECORD, {"input": {"id": rid, "expectedVersion": 2, **nulls}})
    assert _content(data["updateRecord"]["record"]) == CLEARED_OUT


async def test_update_record_blank_text_and_empty_lists_clear(api: Api, factory: Factory) -> None:
    rid = await _draft_with_content(api, factory)
    data = await api.data(
        UPDATE_RECORD,
        {
            "input": {
                "id": rid,
                "expectedVersion": 2,
                "chiefComplaint": "   ",
                "notes": "",
                "prescriptions": [],
                "labResults": [],
                "vitalSigns": {},
            }
        },
    )
    record = data["updateRecord"]["record"]
    assert _content(record) == {**CLEARED_OUT, "followUpDate": "2026-12-01"}


async def test_update_patient_null_clears_and_absence_keeps(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    provider = await factory.provider()
    patient = await factory.patient(
        primary_provider_id=provider["id"], email="ada@mail.test", phone="+1 555 0100 22"
    )
    pid = patient_id(patient)

    renamed = (
        await api.data(
            UPDATE_PATIENT,
            {"input": {"id": pid, "expectedVersion": 1, "givenName": "  Adaline "}},
        )
    )["updatePatient"]["patient"]
    assert renamed == {
        "id": pid,
        "version": 2,
        "givenName": "Adaline",
        "familyName": patient["family_name"],
        "email": "ada@mail.test",
        "phone": "+1 555 0100 22",
        "primaryProvider": {"id": provider_id(provider)},
    }

    cleared = (
        await api.data(
            UPDATE_PATIENT,
            {
                "input": {
                    "id": pid,
                    "expectedVersion": 2,
                    "email": None,
                    "phone": None,
                    "primaryProviderId": None,
                }
            },
        )
    )["updatePatient"]["patient"]
    assert cleared == {
        "id": pid,
        "version": 3,
        "givenName": "Adaline",
        "familyName": patient["family_name"],
        "email": None,
        "phone": None,
        "primaryProvider": None,
    }
    stored = await stored_patient(sessionmaker, patient["id"])
    assert (stored["email"], stored["phone"], stored["primary_provider_id"]) == (None, None, None)
    assert stored["mrn"] == patient["mrn"]
    assert stored["date_of_birth"] == patient["date_of_birth"]

    restored = (
        await api.data(
            UPDATE_PATIENT,
            {
                "input": {
                    "id": pid,
                    "expectedVersion": 3,
                    "email": "Ada@Mail.TEST",
                    "primaryProviderId": provider_id(provider),
                }
            },
        )
    )["updatePatient"]["patient"]
    assert restored["email"] == "Ada@mail.test"
    assert restored["phone"] is None
    assert restored["primaryProvider"] == {"id": provider_id(provider)}
    assert restored["version"] == 4


@pytest.mark.parametrize("field", ["givenName", "familyName"])
async def test_update_patient_names_cannot_be_cleared(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession], field: str
) -> None:
    patient = await factory.patient()
    before = await stored_patient(sessionmaker, patient["id"])
    for value in (None, "", "   "):
        body = await api.query(
            UPDATE_PATIENT,
            {"input": {"id": patient_id(patient), "expectedVersion": 1, field: value}},
        )
        assert error_codes(body) == ["BAD_USER_INPUT"]
        assert f"input.{field}" in body["errors"][0]["message"]
    assert await stored_patient(sessionmaker, patient["id"]) == before
