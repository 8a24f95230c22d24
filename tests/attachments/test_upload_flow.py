"""The attachment life cycle over real HTTP: presigned POST, confirm, download, reject, delete.

Bytes travel from the test to the loopback S3 endpoint exactly as a browser would send them; the
API only ever sees ids. Because the endpoint checks neither signatures nor POST policies, what the
server signed is asserted by decoding the policy itself.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.opaque_ids import NodeType
from models.enums import AttachmentStatus
from tests.api_client import Api, error_codes
from tests.attachments import (
    CONFIRM_UPLOAD,
    DELETE_ATTACHMENT,
    PDF,
    READ_ATTACHMENT,
    RECORD_ATTACHMENTS,
    REQUEST_UPLOAD,
    Bucket,
    Callers,
    Scene,
    attachment_row,
    attachment_rows,
    audited_attachments,
    build_scene,
    call,
    decode_policy,
    gid,
    policy_expiration,
    row_id,
    send_upload,
    sha256_b64,
    sha256_hex,
    stored_attachment,
    upload_input,
)
from tests.conftest import TEST_BUCKET, TEST_REGION
from tests.factories import Factory

UPLOAD_EXPIRY = timedelta(minutes=15)
HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> Bucket:
    return Bucket(s3_endpoint)


@pytest.fixture
async def scene(factory: Factory) -> Scene:
    return await build_scene(factory)


@pytest.fixture
def callers(api: Api) -> Callers:
    return Callers(api)


async def request_upload(
    api: Api, token: str, record_id: uuid.UUID, content: bytes = PDF, **overrides: object
) -> dict[str, Any]:
    body = await api.data(
        REQUEST_UPLOAD, upload_input(record_id, content, **overrides), token=token
    )
    payload: dict[str, Any] = body["requestAttachmentUpload"]
    return payload


async def confirm(api: Api, token: str, attachment_gid: str) -> dict[str, Any]:
    body = await api.data(CONFIRM_UPLOAD, {"id": attachment_gid}, token=token)
    attachment: dict[str, Any] = body["confirmAttachmentUpload"]["attachment"]
    return attachment


# --- what the server signs ---------------------------------------------------------------------


async def test_presigned_post_pins_exactly_the_declared_object(
    api: Api,
    scene: Scene,
    callers: Callers,
    s3_endpoint: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = datetime.now(UTC)
    payload = await request_upload(
        api, callers.dr_a, scene.id("A.draft"), fileName="scan 1 (final).pdf"
    )
    after = datetime.now(UTC)
    attachment, upload = payload["attachment"], payload["upload"]
    attachment_id = row_id(attachment["id"])

    assert attachment == {
        "id": gid(NodeType.ATTACHMENT, attachment_id),
        "fileName": "scan_1__final_.pdf",
        "contentType": "application/pdf",
        "sizeBytes": len(PDF),
        "checksumSha256": sha256_hex(PDF),
        "status": "PENDING_UPLOAD",
        "uploadedAt": None,
        "createdAt": attachment["createdAt"],
        "downloadUrl": None,
    }
    # <tenant>/medical-records/<yyyy>/<mm>/<record-id>/<attachment-id>/<sanitized name>, with the
    # year and month of the visit (2024-03-15), not of today.
    key = (
        f"{scene.tenant}/medical-records/2024/03/{scene.id('A.draft')}/{attachment_id}/"
        "scan_1__final_.pdf"
    )
    row = await attachment_row(sessionmaker, attachment_id)
    assert row["storage_key"] == key
    assert row["status"] is AttachmentStatus.PENDING_UPLOAD
    assert row["version"] == 1

    assert upload["method"] == "POST"
    assert upload["headers"] is None
    assert upload["url"] == f"{s3_endpoint}/{TEST_BUCKET}"
    fields: dict[str, str] = upload["fields"]
    assert fields["key"] == key
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert f"/{TEST_REGION}/s3/aws4_request" in fields["x-amz-credential"]
    assert HEX64.fullmatch(fields["x-amz-signature"])

    policy = decode_policy(fields)
    conditions: list[Any] = policy["conditions"]
    exact = {name: value for c in conditions if isinstance(c, dict) for name, value in c.items()}
    ranges = [c for c in conditions if not isinstance(c, dict)]
    # Exactly this size, and nothing open-ended (no starts-with): the client chooses nothing.
    assert ranges == [["content-length-range", len(PDF), len(PDF)]]
    assert exact == {
        "bucket": TEST_BUCKET,
        "key": key,
        "Content-Type": "application/pdf",
        "x-amz-server-side-encryption": "AES256",
        "x-amz-storage-class": "INTELLIGENT_TIERING",
        "x-amz-checksum-algorithm": "SHA256",
        "x-amz-checksum-sha256": sha256_b64(PDF),
        "x-amz-meta-tenant": scene.tenant,
        "x-amz-meta-record": str(scene.id("A.draft")),
        "x-amz-meta-attachment": str(attachment_id),
        "x-amz-algorithm": fields["x-amz-algorithm"],
        "x-amz-credential": fields["x-amz-credential"],
        "x-amz-date": fields["x-amz-date"],
    }
    # Every form field the client is told to send is pinned to exactly that value.
    signed = {name: value for name, value in fields.items() if name != "x-amz-signature"}
    assert signed.pop("policy")
    assert signed == {name: value for name, value in exact.items() if name != "bucket"}

    expiration = policy_expiration(policy)
    assert before.replace(microsecond=0) + UPLOAD_EXPIRY <= expiration
    assert expiration <= after + UPLOAD_EXPIRY
    assert datetime.fromisoformat(upload["expiresAt"]).replace(microsecond=0) == expiration


# --- upload, confirm, download -----------------------------------------------------------------


async def test_upload_confirm_and_download_the_same_bytes(
    api: Api,
    scene: Scene,
    callers: Callers,
    bucket: Bucket,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    payload = await request_upload(
        api, callers.dr_a, scene.id("A.draft"), fileName="scan 1 (final).pdf"
    )
    attachment_gid = payload["attachment"]["id"]
    attachment_id = row_id(attachment_gid)
    key = payload["upload"]["fields"]["key"]

    response = await send_upload(payload["upload"], PDF)
    assert response.status_code in {200, 201, 204}, response.text

    head = bucket.head(key)
    assert head is not None
    assert head["ContentLength"] == len(PDF)
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"] == {
        "tenant": scene.tenant,
        "record": str(scene.id("A.draft")),
        "attachment": str(attachment_id),
    }

    confirmed = await confirm(api, callers.dr_a, attachment_gid)
    assert confirmed["status"] == "AVAILABLE"
    assert confirmed["uploadedAt"] is not None
    row = await attachment_row(sessionmaker, attachment_id)
    assert row["status"] is AttachmentStatus.AVAILABLE
    assert row["uploaded_at"] is not None
    assert row["version"] == 2

    # Confirming again answers with the outcome already reached, and changes nothing.
    again = await confirm(api, callers.dr_a, attachment_gid)
    # (downloadUrl is signed afresh on every read, so it is compared apart.)
    urls = again.pop("downloadUrl"), confirmed.pop("downloadUrl")
    assert all(urls), urls
    assert again == confirmed
    assert await attachment_row(sessionmaker, attachment_id) == row

    request_id, body = await call(api, READ_ATTACHMENT, {"id": attachment_gid}, callers.dr_a)
    assert "errors" not in body, body
    url = body["data"]["node"]["downloadUrl"]
    assert isinstance(url, str)
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert parts.path == f"/{TEST_BUCKET}/{key}"
    assert query["X-Amz-Expires"] == "300"
    assert query["response-content-disposition"] == 'attachment; filename="scan_1__final_.pdf"'
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert HEX64.fullmatch(query["X-Amz-Signature"])
    # The URL handed out is on the audit trail of the request that issued it.
    assert any(attachment_id in ids for ids in await audited_attachments(sessionmaker, request_id))

    async with httpx.AsyncClient(timeout=10) as http:
        download = await http.get(url)
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-disposition"] == 'attachment; filename="scan_1__final_.pdf"'


# --- what does not match is rejected, and removed ----------------------------------------------

OTHER_SAME_SIZE = bytes(reversed(PDF))


@pytest.mark.parametrize(
    ("sent", "replace"),
    [
        pytest.param(PDF + b"extra", {}, id="wrong-size"),
        pytest.param(PDF, {"Content-Type": "text/plain"}, id="wrong-content-type"),
        pytest.param(OTHER_SAME_SIZE, {}, id="wrong-checksum"),
    ],
)
async def test_mismatching_upload_is_rejected_and_removed(
    api: Api,
    scene: Scene,
    callers: Callers,
    bucket: Bucket,
    sessionmaker: async_sessionmaker[AsyncSession],
    sent: bytes,
    replace: dict[str, str],
) -> None:
    assert len(OTHER_SAME_SIZE) == len(PDF)
    assert sha256_hex(OTHER_SAME_SIZE) != sha256_hex(PDF)
    payload = await request_upload(api, callers.dr_a, scene.id("A.draft"))
    attachment_gid = payload["attachment"]["id"]
    key = payload["upload"]["fields"]["key"]
    # The store on loopback accepts what real S3 would refuse by policy; confirm must catch it.
    response = await send_upload(payload["upload"], sent, replace=replace)
    assert response.status_code in {200, 201, 204}, response.text
    head = bucket.head(key)
    assert head is not None
    assert head["ContentLength"] == len(sent)
    assert head["ContentType"] == replace.get("Content-Type", "application/pdf")

    rejected = await confirm(api, callers.dr_a, attachment_gid)
    assert rejected["status"] == "REJECTED"
    assert rejected["uploadedAt"] is None
    assert rejected["downloadUrl"] is None
    assert bucket.head(key) is None
    row = await attachment_row(sessionmaker, row_id(attachment_gid))
    assert row["status"] is AttachmentStatus.REJECTED
    assert row["version"] == 2

    # Idempotent: the verdict stands, the row is not bumped again.
    assert await confirm(api, callers.dr_a, attachment_gid) == rejected
    assert await attachment_row(sessionmaker, row_id(attachment_gid)) == row


async def test_confirm_before_anything_was_uploaded(
    api: Api,
    scene: Scene,
    callers: Callers,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    payload = await request_upload(api, callers.dr_a, scene.id("A.draft"))
    attachment_gid = payload["attachment"]["id"]
    before = await attachment_rows(sessionmaker, scene.tenant)

    body = await api.query(CONFIRM_UPLOAD, {"id": attachment_gid}, token=callers.dr_a)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["data"] is None
    message = body["errors"][0]["message"]
    assert message.startswith("id:")
    assert "nothing has been uploaded" in message

    assert await attachment_rows(sessionmaker, scene.tenant) == before
    assert before[row_id(attachment_gid)]["status"] is AttachmentStatus.PENDING_UPLOAD


# --- deleting ------------------------------------------------------------------------------------


async def test_deleted_attachment_is_gone_everywhere(
    api: Api,
    scene: Scene,
    callers: Callers,
    bucket: Bucket,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    payload = await request_upload(api, callers.dr_a, scene.id("A.draft"))
    attachment_gid = payload["attachment"]["id"]
    key = payload["upload"]["fields"]["key"]
    assert (await send_upload(payload["upload"], PDF)).status_code in {200, 201, 204}
    assert (await confirm(api, callers.dr_a, attachment_gid))["status"] == "AVAILABLE"

    request_id, body = await call(api, DELETE_ATTACHMENT, {"id": attachment_gid}, callers.dr_a)
    assert "errors" not in body, body
    deleted = body["data"]["deleteAttachment"]["attachment"]
    assert deleted["id"] == attachment_gid
    assert deleted["status"] == "DELETED"
    assert deleted["downloadUrl"] is None
    assert bucket.head(key) is None
    row = await attachment_row(sessionmaker, row_id(attachment_gid))
    assert row["status"] is AttachmentStatus.DELETED
    assert row["version"] == 3
    assert [
        row_id(attachment_gid) in ids for ids in await audited_attachments(sessionmaker, request_id)
    ] == [True]

    record_gid = gid(NodeType.MEDICAL_RECORD, scene.id("A.draft"))
    for token in (callers.dr_a, callers.admin):
        listed = await api.data(RECORD_ATTACHMENTS, {"id": record_gid}, token=token)
        assert listed["record"]["attachments"] == []
        node = await api.data(READ_ATTACHMENT, {"id": attachment_gid}, token=token)
        assert node["node"] is None


# --- who gets a download URL, and the audit trail ----------------------------------------------


async def test_download_urls_only_for_available_attachments_and_all_audited(
    api: Api,
    factory: Factory,
    scene: Scene,
    callers: Callers,
    bucket: Bucket,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    stored = {
        status: await stored_attachment(factory, bucket, scene, "A.final", status)
        for status in (
            AttachmentStatus.AVAILABLE,
            AttachmentStatus.PENDING_UPLOAD,
            AttachmentStatus.REJECTED,
        )
    }
    second = await stored_attachment(factory, bucket, scene, "A.final", AttachmentStatus.AVAILABLE)
    available = {stored[AttachmentStatus.AVAILABLE]["id"], second["id"]}
    statuses = {row["id"]: row["status"].value for row in (*stored.values(), second)}
    record_gid = gid(NodeType.MEDICAL_RECORD, scene.id("A.final"))

    # Staff see every attachment of the record; only the AVAILABLE ones come with a URL.
    for token in (callers.admin, callers.dr_a, callers.dr_b):
        request_id, body = await call(api, RECORD_ATTACHMENTS, {"id": record_gid}, token)
        assert "errors" not in body, body
        listed = {row_id(a["id"]): a for a in body["data"]["record"]["attachments"]}
        assert {key: a["status"] for key, a in listed.items()} == statuses
        issued = {key for key, a in listed.items() if a["downloadUrl"] is not None}
        assert issued == available
        # Exactly the attachments whose URL was issued are on the request's audit row.
        assert await audited_attachments(sessionmaker, request_id) == [available]

    # The patient sees its own record's AVAILABLE attachments, with URLs, and nothing else.
    request_id, body = await call(api, RECORD_ATTACHMENTS, {"id": record_gid}, callers.pt_p)
    assert "errors" not in body, body
    attachments = body["data"]["record"]["attachments"]
    assert {row_id(a["id"]) for a in attachments} == available
    assert all(a["status"] == "AVAILABLE" and a["downloadUrl"] for a in attachments)
    assert await audited_attachments(sessionmaker, request_id) == [available]
    pending = gid(NodeType.ATTACHMENT, stored[AttachmentStatus.PENDING_UPLOAD]["id"])
    assert (await api.data(READ_ATTACHMENT, {"id": pending}, token=callers.pt_p))["node"] is None

    # Another patient gets neither the record nor the attachment, so no URL either.
    request_id, body = await call(api, RECORD_ATTACHMENTS, {"id": record_gid}, callers.pt_q)
    assert "errors" not in body, body
    assert body["data"]["record"] is None
    own = gid(NodeType.ATTACHMENT, second["id"])
    assert (await api.data(READ_ATTACHMENT, {"id": own}, token=callers.pt_q))["node"] is None
    assert await audited_attachments(sessionmaker, request_id) == [set()]

    # A URL issued in a mutation's payload is audited too.
    payload = await request_upload(api, callers.dr_a, scene.id("A.draft"))
    assert (await send_upload(payload["upload"], PDF)).status_code in {200, 201, 204}
    attachment_gid = payload["attachment"]["id"]
    request_id, body = await call(api, CONFIRM_UPLOAD, {"id": attachment_gid}, callers.dr_a)
    assert "errors" not in body, body
    assert body["data"]["confirmAttachmentUpload"]["attachment"]["downloadUrl"]
    trail = await audited_attachments(sessionmaker, request_id)
    assert trail
    assert all(ids == {row_id(attachment_gid)} for ids in trail), trail
