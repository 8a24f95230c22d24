"""``Patient.preferredLanguage``: a BCP 47 tag, stored in its canonical form, readable wherever the
patient is (the role matrix checks every caller on every path)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from app.domain.opaque_ids import NodeType, OpaqueIds
from models import Patient

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")
CREATE = """mutation Create($input: CreatePatientInput!) {
  createPatient(input: $input) { patient { id version preferredLanguage } } }"""
UPDATE = """mutation Update($input: UpdatePatientInput!) {
  updatePatient(input: $input) { patient { id version preferredLanguage } } }"""


async def _stored(sessionmaker: async_sessionmaker[AsyncSession], patient_id: str) -> str | None:
    _, row_id = IDS.decode_id(patient_id)
    async with sessionmaker() as session:
        language: str | None = await session.scalar(
            select(Patient.preferred_language).where(Patient.id == row_id)
        )
    return language


@pytest.mark.parametrize(
    ("given", "stored"),
    [("es-MX", "es-MX"), (" EN-us ", "en-US"), ("zh-hant-tw", "zh-Hant-TW"), ("iw", "he")],
)
async def test_a_tag_is_stored_in_its_canonical_form(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], given: str, stored: str
) -> None:
    created = await api.data(
        CREATE,
        {
            "input": {
                "mrn": "MRN-LANG-1",
                "givenName": "Ana",
                "familyName": "Silva",
                "dateOfBirth": "1980-05-06",
                "sex": "FEMALE",
                "preferredLanguage": given,
            }
        },
    )
    patient = created["createPatient"]["patient"]
    assert patient["preferredLanguage"] == stored
    assert await _stored(sessionmaker, patient["id"]) == stored


async def test_an_update_changes_and_clears_the_language(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    row = await factory.patient(preferred_language="fr-CA")
    patient_id = IDS.encode_id(NodeType.PATIENT, row["id"])
    version = 1
    for given, stored in (("pt-br", "pt-BR"), (None, None), ("de", "de")):
        updated = await api.data(
            UPDATE,
            {"input": {"id": patient_id, "expectedVersion": version, "preferredLanguage": given}},
        )
        patient = updated["updatePatient"]["patient"]
        version = patient["version"]
        assert patient["preferredLanguage"] == stored
        assert await _stored(sessionmaker, patient_id) == stored
