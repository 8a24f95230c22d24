"""A record holds at most so many rows under it, which is what bounds the lists a query reads
without `first` (their cost, schema/limits.py). Going past a limit changes nothing."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLObjectType,
    get_named_type,
    get_nullable_type,
    is_list_type,
    is_object_type,
)

from app.domain.opaque_ids import NodeType, OpaqueIds
from app.domain.record_workflow import MAX_ATTACHMENTS, MAX_DIAGNOSES, MAX_STATUS_CHANGES
from models.enums import AttachmentStatus, DiagnosisType, RecordStatus
from schema.limits import list_bound
from schema.schema import build_schema
from schema.strawberry_adapter import graphql_schema
from tests.api.test_mutation_validation import snapshot
from tests.api_client import error_codes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")

ADD_DIAGNOSIS = """mutation($input: AddDiagnosisInput!) {
  addDiagnosis(input: $input) { diagnosis { id } } }"""
REQUEST_UPLOAD = """mutation($input: RequestAttachmentUploadInput!) {
  requestAttachmentUpload(input: $input) { attachment { id } } }"""
CHANGE = """mutation($input: ChangeRecordStatusInput!) {
  changeRecordStatus(input: $input) { record { status } } }"""


async def _refused(
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    factory: Factory,
    query: str,
    variables: dict[str, Any],
) -> dict[str, Any]:
    before = await snapshot(sessionmaker, factory.tenant_id)
    body = await api.query(query, variables)
    assert await snapshot(sessionmaker, factory.tenant_id) == before
    return body


async def test_a_record_takes_no_diagnosis_past_its_limit(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    record = await factory.record(
        await factory.patient(), await factory.provider(), status=RecordStatus.DRAFT
    )
    for _ in range(MAX_DIAGNOSES):
        await factory.diagnosis(record, type=DiagnosisType.SECONDARY)
    new = {
        "recordId": IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
        "icd10Code": "J45.909",
        "description": "Asthma",
        "type": "SECONDARY",
    }

    body = await _refused(api, sessionmaker, factory, ADD_DIAGNOSIS, {"input": new})

    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"] == (
        f"input.recordId: a record holds at most {MAX_DIAGNOSES} diagnoses"
    )


async def test_a_record_takes_no_attachment_past_its_limit_but_deleted_ones_do_not_count(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    record = await factory.record(
        await factory.patient(), await factory.provider(), status=RecordStatus.DRAFT
    )
    for _ in range(MAX_ATTACHMENTS):
        await factory.attachment(record)
    content = b"a scan"
    new = {
        "recordId": IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
        "fileName": "scan.pdf",
        "contentType": "application/pdf",
        "sizeBytes": len(content),
        "checksumSha256": hashlib.sha256(content).hexdigest(),
    }

    body = await _refused(api, sessionmaker, factory, REQUEST_UPLOAD, {"input": new})

    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"] == (
        f"input.recordId: a record holds at most {MAX_ATTACHMENTS} attachments"
    )
    other = await factory.record(
        await factory.patient(), await factory.provider(), status=RecordStatus.DRAFT
    )
    for _ in range(MAX_ATTACHMENTS):
        await factory.attachment(other, status=AttachmentStatus.DELETED)
    new["recordId"] = IDS.encode_id(NodeType.MEDICAL_RECORD, other["id"])
    body = await api.query(REQUEST_UPLOAD, {"input": new})
    assert "errors" not in body, body


async def test_a_record_takes_no_status_change_past_its_limit(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    record = await factory.record(
        await factory.patient(), await factory.provider(), status=RecordStatus.AMENDED
    )
    for _ in range(MAX_STATUS_CHANGES):
        await factory.status_event(record, status=RecordStatus.AMENDED)
    change = {
        "id": IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
        "status": "AMENDED",
        "expectedVersion": 1,
        "reason": "one addendum too many",
    }

    body = await _refused(api, sessionmaker, factory, CHANGE, {"input": change})

    assert error_codes(body) == ["INVALID_TRANSITION"], body
    assert body["errors"][0]["message"] == (
        f"a record takes at most {MAX_STATUS_CHANGES} status changes"
    )


def test_every_list_of_rows_read_without_first_is_bounded() -> None:
    """A new list of rows needs a limit its writes keep, declared on its field, or its cost
    bounds nothing."""
    schema = graphql_schema(build_schema())
    # Parts of a record's own row, bounded by input validation, not rows.
    json_lists = {("MedicalRecord", "prescriptions"), ("MedicalRecord", "labResults")}
    unbounded = set()
    for name, type_ in schema.type_map.items():
        if name.startswith("__") or not is_object_type(type_) or name.endswith("Connection"):
            continue
        for field_name, field in type_.fields.items():
            listed = is_list_type(get_nullable_type(field.type))
            rows = listed and is_object_type(get_named_type(field.type))
            if rows and "first" not in field.args and list_bound(field) is None:
                unbounded.add((name, field_name))
    assert unbounded == json_lists
    record = schema.type_map["MedicalRecord"]
    assert isinstance(record, GraphQLObjectType)
    assert list_bound(record.fields["diagnoses"]) == MAX_DIAGNOSES
    assert list_bound(record.fields["attachments"]) == MAX_ATTACHMENTS
    assert list_bound(record.fields["statusHistory"]) == MAX_STATUS_CHANGES
