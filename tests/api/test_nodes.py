"""Fetching single objects by global id: every type, and every way an id can be wrong."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.opaque_ids import NodeType, OpaqueIds
from tests.api_client import Api, error_codes
from tests.factories import Factory

NODE = """query($id: ID!) { node(id: $id) { __typename id
  ... on Patient { mrn } ... on Provider { npi } ... on MedicalRecord { status }
  ... on Diagnosis { icd10Code } ... on Attachment { fileName } } }"""


@pytest.fixture
def ids() -> OpaqueIds:
    return OpaqueIds("medrec-opaque-id-v1")


async def _graph(factory: Factory) -> dict[str, dict[str, Any]]:
    provider = await factory.provider()
    patient = await factory.patient(primary_provider_id=provider["id"])
    record = await factory.record(patient, provider)
    return {
        "provider": provider,
        "patient": patient,
        "record": record,
        "diagnosis": await factory.diagnosis(record),
        "attachment": await factory.attachment(record),
    }


async def test_node_resolves_every_type(api: Api, factory: Factory, ids: OpaqueIds) -> None:
    rows = await _graph(factory)
    expected = {
        (NodeType.PROVIDER, "provider"): ("Provider", "npi", rows["provider"]["npi"]),
        (NodeType.PATIENT, "patient"): ("Patient", "mrn", rows["patient"]["mrn"]),
        (NodeType.MEDICAL_RECORD, "record"): ("MedicalRecord", "status", "FINALIZED"),
        (NodeType.DIAGNOSIS, "diagnosis"): ("Diagnosis", "icd10Code", "E11.9"),
        (NodeType.ATTACHMENT, "attachment"): ("Attachment", "fileName", "scan.pdf"),
    }
    for (node_type, key), (typename, field, value) in expected.items():
        global_id = ids.encode_id(node_type, rows[key]["id"])
        node = (await api.data(NODE, {"id": global_id}))["node"]
        assert node == {"__typename": typename, "id": global_id, field: value}


async def test_ids_from_the_api_round_trip(api: Api, factory: Factory) -> None:
    await _graph(factory)
    data = await api.data("{ records { edges { node { id patient { id } provider { id } } } } }")
    record = data["records"]["edges"][0]["node"]
    for field, global_id in (
        ("record", record["id"]),
        ("patient", record["patient"]["id"]),
        ("provider", record["provider"]["id"]),
    ):
        fetched = await api.data(
            f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}", {"id": global_id}
        )
        assert fetched[field] == {"id": global_id}


async def test_unknown_and_other_tenant_ids_are_null(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    other = await _graph(Factory(factory.sessionmaker, f"{factory.tenant_id}-other"))
    import uuid

    for row_id in (other["patient"]["id"], uuid.uuid4()):
        global_id = ids.encode_id(NodeType.PATIENT, row_id)
        data = await api.data(
            "query($id: ID!) { patient(id: $id) { mrn } node(id: $id) { id } }", {"id": global_id}
        )
        assert data == {"patient": None, "node": None}
    for field, node_type, key in (
        ("record", NodeType.MEDICAL_RECORD, "record"),
        ("provider", NodeType.PROVIDER, "provider"),
    ):
        global_id = ids.encode_id(node_type, other[key]["id"])
        data = await api.data(f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}", {"id": global_id})
        assert data == {field: None}
    for node_type, key in ((NodeType.DIAGNOSIS, "diagnosis"), (NodeType.ATTACHMENT, "attachment")):
        data = await api.data(NODE, {"id": ids.encode_id(node_type, other[key]["id"])})
        assert data == {"node": None}


@pytest.mark.parametrize("bad_id", ["", "garbage", "12345", "A" * 34, "ÿÿÿÿ", "../patients"])
async def test_malformed_ids_are_bad_user_input(api: Api, bad_id: str) -> None:
    for query in (NODE, "query($id: ID!) { patient(id: $id) { id } }"):
        body = await api.query(query, {"id": bad_id})
        assert error_codes(body) == ["BAD_USER_INPUT"]
        assert "malformed id" in body["errors"][0]["message"]


async def test_edited_id_is_rejected(api: Api, factory: Factory, ids: OpaqueIds) -> None:
    rows = await _graph(factory)
    good = ids.encode_id(NodeType.PATIENT, rows["patient"]["id"])
    for position in (0, 5, len(good) - 1):
        swapped = "B" if good[position] != "B" else "C"
        edited = good[:position] + swapped + good[position + 1 :]
        body = await api.query("query($id: ID!) { patient(id: $id) { id } }", {"id": edited})
        assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_id_of_another_type_is_bad_user_input(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    rows = await _graph(factory)
    record_id = ids.encode_id(NodeType.MEDICAL_RECORD, rows["record"]["id"])
    body = await api.query("query($id: ID!) { patient(id: $id) { id } }", {"id": record_id})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == "id: not a Patient id"


async def test_record_fields_round_trip(api: Api, factory: Factory, ids: OpaqueIds) -> None:
    rows = await _graph(factory)
    await factory.status_event(rows["record"], status="DRAFT", changed_by="dr-a")
    await factory.status_event(
        rows["record"], previous_status="DRAFT", status="FINALIZED", changed_by="dr-a"
    )
    query = """query($id: ID!) { record(id: $id) { recordType visitDate chiefComplaint notes
      vitalSigns { heartRate temperatureC oxygenSaturation systolicBp }
      prescriptions { medication dosage frequency durationDays notes }
      labResults { test value unit referenceRange abnormal }
      status finalizedAt followUpDate version
      statusHistory { previousStatus status changedBy reason sequence }
      attachments { contentType sizeBytes checksumSha256 status downloadUrl } } }"""
    record = (
        await api.data(query, {"id": ids.encode_id(NodeType.MEDICAL_RECORD, rows["record"]["id"])})
    )["record"]
    assert record["recordType"] == "CONSULTATION"
    assert record["visitDate"] == rows["record"]["visit_date"].isoformat()
    assert record["vitalSigns"] == {
        "heartRate": 70,
        "temperatureC": 36.8,
        "oxygenSaturation": 98,
        "systolicBp": None,
    }
    assert record["prescriptions"] == [
        {
            "medication": "Metformin",
            "dosage": "500 mg",
            "frequency": "twice daily",
            "durationDays": None,
            "notes": None,
        }
    ]
    assert record["labResults"] == [
        {"test": "HbA1c", "value": "6.9", "unit": "%", "referenceRange": None, "abnormal": True}
    ]
    history = record["statusHistory"]
    assert [(e["previousStatus"], e["status"]) for e in history] == [
        (None, "DRAFT"),
        ("DRAFT", "FINALIZED"),
    ]
    assert int(history[0]["sequence"]) < int(history[1]["sequence"])
    [attachment] = record["attachments"]
    download_url = attachment.pop("downloadUrl")
    assert attachment == {
        "contentType": "application/pdf",
        "sizeBytes": 1024,
        "checksumSha256": "0" * 64,
        "status": "AVAILABLE",
    }
    assert "X-Amz-Signature=" in download_url
    assert record["version"] == 1
