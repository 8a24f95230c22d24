"""``MedicalRecord.staffNote``: written by clinic staff with a record, read by staff only (the
role matrix checks every caller on every path; tests/api/test_sql_trees.py compares the
one-statement answers with graphql-core's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from app.domain.opaque_ids import NodeType, OpaqueIds
from models import MedicalRecord
from models.enums import RecordStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")
CREATE = """mutation Create($input: CreateRecordInput!) {
  createRecord(input: $input) { record { id version staffNote } } }"""
UPDATE = """mutation Update($input: UpdateRecordInput!) {
  updateRecord(input: $input) { record { id version staffNote notes } } }"""


async def _stored(sessionmaker: async_sessionmaker[AsyncSession], record_id: str) -> str | None:
    _, row_id = IDS.decode_id(record_id)
    async with sessionmaker() as session:
        note: str | None = await session.scalar(
            select(MedicalRecord.staff_note).where(MedicalRecord.id == row_id)
        )
    return note


async def test_staff_write_a_note_with_a_record_change_it_and_clear_it(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    doctor = await factory.provider(cognito_sub="dr-note")
    patient = await factory.patient(primary_provider_id=doctor["id"])
    token = api.token(subject="dr-note", groups=("provider",))

    created = await api.data(
        CREATE,
        {
            "input": {
                "patientId": IDS.encode_id(NodeType.PATIENT, patient["id"]),
                "recordType": "CONSULTATION",
                "visitDate": "2026-01-02T09:00:00+00:00",
                "staffNote": "  family member asked not to be told  ",
            }
        },
        token=token,
    )
    record = created["createRecord"]["record"]
    assert record["staffNote"] == "family member asked not to be told"
    assert await _stored(sessionmaker, record["id"]) == "family member asked not to be told"

    for note in ("call back on Monday", None):
        updated = await api.data(
            UPDATE,
            {
                "input": {
                    "id": record["id"],
                    "expectedVersion": record["version"],
                    "staffNote": note,
                }
            },
            token=token,
        )
        record = updated["updateRecord"]["record"]
        assert record["staffNote"] == note
        assert await _stored(sessionmaker, record["id"]) == note


async def test_a_patient_reads_the_notes_of_a_record_and_null_for_its_staff_note(
    api: Api, factory: Factory
) -> None:
    doctor = await factory.provider()
    patient = await factory.patient(primary_provider_id=doctor["id"], cognito_sub="pt-note")
    record = await factory.record(
        patient, doctor, status=RecordStatus.FINALIZED, notes="rest", staff_note="staff only"
    )
    query = "query($id: ID!) { record(id: $id) { notes staffNote } }"
    variables = {"id": IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"])}

    as_patient = await api.data(
        query, variables, token=api.token(subject="pt-note", groups=("patient",))
    )
    as_admin = await api.data(query, variables)

    assert as_patient["record"] == {"notes": "rest", "staffNote": None}
    assert as_admin["record"] == {"notes": "rest", "staffNote": "staff only"}
