"""Attachments end to end: the API, a real S3-compatible store on loopback, and the database.

The store (moto's server, see ``app/ops/local_s3.py``) neither checks signatures nor enforces POST
policies, so the tests also decode the signed policy and assert what it pins. These helpers are
shared by the modules of this package; fixtures stay in the modules that use them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.opaque_ids import NodeType, OpaqueIds
from models import Attachment, AuditEvent
from models.enums import AttachmentStatus, RecordStatus
from tests.api_client import Api
from tests.conftest import TEST_BUCKET, TEST_REGION
from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
# The visit the draft record is about: the object key carries its year and month.
VISIT = datetime(2024, 3, 15, 10, 30, tzinfo=UTC)

ATTACHMENT_FIELDS = (
    "id fileName contentType sizeBytes checksumSha256 status uploadedAt createdAt downloadUrl"
)
REQUEST_UPLOAD = f"""mutation RequestUpload($input: RequestAttachmentUploadInput!) {{
  requestAttachmentUpload(input: $input) {{
    attachment {{ {ATTACHMENT_FIELDS} }}
    upload {{ url method fields headers expiresAt }}
  }}
}}"""
CONFIRM_UPLOAD = f"""mutation ConfirmUpload($id: ID!) {{
  confirmAttachmentUpload(id: $id) {{ attachment {{ {ATTACHMENT_FIELDS} }} }}
}}"""
DELETE_ATTACHMENT = f"""mutation DeleteAttachment($id: ID!) {{
  deleteAttachment(id: $id) {{ attachment {{ {ATTACHMENT_FIELDS} }} }}
}}"""
READ_ATTACHMENT = f"""query ReadAttachment($id: ID!) {{
  node(id: $id) {{ ... on Attachment {{ {ATTACHMENT_FIELDS} }} }}
}}"""
RECORD_ATTACHMENTS = """query RecordAttachments($id: ID!) {
  record(id: $id) { id attachments { id status downloadUrl } }
}"""


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def sha256_b64(content: bytes) -> str:
    return base64.b64encode(hashlib.sha256(content).digest()).decode("ascii")


def gid(node_type: NodeType, row_id: uuid.UUID) -> str:
    return IDS.encode_id(node_type, row_id)


def row_id(global_id: str) -> uuid.UUID:
    return IDS.decode_id(global_id)[1]


def upload_input(record_id: uuid.UUID, content: bytes = PDF, **overrides: object) -> dict[str, Any]:
    values: dict[str, Any] = {
        "recordId": gid(NodeType.MEDICAL_RECORD, record_id),
        "fileName": "scan.pdf",
        "contentType": "application/pdf",
        "sizeBytes": len(content),
        "checksumSha256": sha256_hex(content),
    }
    return {"input": values | overrides}


def decode_policy(fields: Mapping[str, str]) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return policy


def policy_expiration(policy: Mapping[str, Any]) -> datetime:
    return datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def send_upload(
    upload: Mapping[str, Any], content: bytes, *, replace: Mapping[str, str] | None = None
) -> httpx.Response:
    """The browser's multipart POST: the presigned fields (some replaced), then the file."""
    fields: dict[str, str] = {**upload["fields"], **(replace or {})}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            upload["url"],
            data=fields,
            files={"file": ("upload.bin", content, fields["Content-Type"])},
        )


# --- the store ---------------------------------------------------------------------------------


class Bucket:
    """TEST_BUCKET on the loopback endpoint, through boto3 (independent of the app's client)."""

    def __init__(self, endpoint_url: str) -> None:
        self.client: Any = boto3.client(
            "s3",
            region_name=TEST_REGION,
            endpoint_url=endpoint_url,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def head(self, key: str) -> dict[str, Any] | None:
        """head_object's answer, or None when the store answers 404."""
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=TEST_BUCKET, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return head

    def put(self, key: str, content: bytes, content_type: str = "application/pdf") -> None:
        self.client.put_object(Bucket=TEST_BUCKET, Key=key, Body=content, ContentType=content_type)

    def get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=TEST_BUCKET, Key=key)["Body"].read()
        return body

    def contents(self) -> dict[str, str]:
        """Every object of the bucket: key -> ETag."""
        found: dict[str, str] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=TEST_BUCKET):
            for item in page.get("Contents", []):
                found[item["Key"]] = item["ETag"]
        return found


# --- the database ------------------------------------------------------------------------------


async def attachment_rows(
    sessionmaker: async_sessionmaker[AsyncSession], *tenants: str
) -> dict[uuid.UUID, dict[str, Any]]:
    """Every attachments row of ``tenants``, every column, by id."""
    table = Attachment.__table__
    async with sessionmaker() as session:
        result = await session.execute(select(table).where(table.c.tenant_id.in_(tenants)))
        return {row["id"]: dict(row) for row in result.mappings()}


async def attachment_row(
    sessionmaker: async_sessionmaker[AsyncSession], attachment_id: uuid.UUID
) -> dict[str, Any]:
    table = Attachment.__table__
    async with sessionmaker() as session:
        row = (await session.execute(select(table).where(table.c.id == attachment_id))).mappings()
        return dict(row.one())


async def audited_attachments(
    sessionmaker: async_sessionmaker[AsyncSession], request_id: str
) -> list[set[uuid.UUID]]:
    """attachment_ids of each audit row the request appended, oldest first."""
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEvent.attachment_ids)
            .where(AuditEvent.request_id == request_id)
            .order_by(AuditEvent.id)
        )
        return [set(ids) for ids in rows]


async def call(
    api: Api, query: str, variables: dict[str, Any], token: str
) -> tuple[str, dict[str, Any]]:
    """Posts with a fresh X-Request-ID; returns it and the JSON body."""
    request_id = f"att-{uuid.uuid4().hex}"
    response = await api.post(query, variables, token=token, headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return request_id, body


# --- who calls, and what there is ---------------------------------------------------------------


class Callers:
    """Tokens of the scene's callers (see ``Scene``)."""

    def __init__(self, api: Api) -> None:
        self.admin = api.token(subject="admin-1", groups=("admin",))
        self.dr_a = api.token(subject="dr-a", groups=("provider",))
        self.dr_b = api.token(subject="dr-b", groups=("provider",))
        self.pt_p = api.token(subject="pt-p", groups=("patient",))
        self.pt_q = api.token(subject="pt-q", groups=("patient",))
        self.no_role = api.token(subject="nobody", groups=())
        self.other_admin = api.token(
            subject="admin-2", groups=("admin",), tenant_id=f"{api.tenant_id}-other"
        )

    def __getitem__(self, name: str) -> str:
        token: str = getattr(self, name)
        return token


@dataclass(frozen=True)
class Scene:
    """Providers A (``dr-a``) and B (``dr-b``); patients P (``pt-p``, A's) and Q (``pt-q``, B's);
    A's DRAFT and FINALIZED records for P, B's DRAFT record for Q."""

    tenant: str
    rows: dict[str, dict[str, Any]]

    def id(self, label: str) -> uuid.UUID:
        value: uuid.UUID = self.rows[label]["id"]
        return value

    def key_prefix(self, record: str) -> str:
        visit: datetime = self.rows[record]["visit_date"]
        return f"{self.tenant}/medical-records/{visit:%Y}/{visit:%m}/{self.id(record)}"


async def build_scene(factory: Factory) -> Scene:
    rows: dict[str, dict[str, Any]] = {}
    rows["A"] = await factory.provider(cognito_sub="dr-a")
    rows["B"] = await factory.provider(cognito_sub="dr-b")
    rows["P"] = await factory.patient(cognito_sub="pt-p", primary_provider_id=rows["A"]["id"])
    rows["Q"] = await factory.patient(cognito_sub="pt-q", primary_provider_id=rows["B"]["id"])
    rows["A.draft"] = await factory.record(
        rows["P"], rows["A"], status=RecordStatus.DRAFT, visit_date=VISIT
    )
    rows["A.final"] = await factory.record(rows["P"], rows["A"], status=RecordStatus.FINALIZED)
    rows["B.draft"] = await factory.record(rows["Q"], rows["B"], status=RecordStatus.DRAFT)
    return Scene(factory.tenant_id, rows)


async def stored_attachment(
    factory: Factory,
    bucket: Bucket,
    scene: Scene,
    record: str,
    status: AttachmentStatus,
    content: bytes = PDF,
    *,
    stored: bytes | None = None,
) -> dict[str, Any]:
    """An attachment row of ``record`` declaring ``content``, with an object in the bucket under its
    key: ``content`` itself unless ``stored`` says otherwise."""
    attachment_id = uuid.uuid4()
    key = f"{scene.key_prefix(record)}/{attachment_id}/scan.pdf"
    bucket.put(key, content if stored is None else stored)
    return await factory.attachment(
        scene.rows[record],
        id=attachment_id,
        size_bytes=len(content),
        checksum_sha256=sha256_hex(content),
        status=status,
        storage_key=key,
        uploaded_at=None if status is AttachmentStatus.PENDING_UPLOAD else VISIT,
    )
