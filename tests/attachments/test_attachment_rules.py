"""What requestAttachmentUpload accepts, and who may request, confirm and delete attachments.

Every refusal is checked against the attachments rows of the test's tenant and of a second
tenant, and against every object of the bucket, taken before and after the call: a refused
request writes nothing, to the database or to the store.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.opaque_ids import NodeType
from models.enums import AttachmentStatus
from tests.api_client import Api, error_codes
from tests.attachments import (
    CONFIRM_UPLOAD,
    DELETE_ATTACHMENT,
    PDF,
    REQUEST_UPLOAD,
    Bucket,
    Callers,
    Scene,
    attachment_row,
    attachment_rows,
    build_scene,
    gid,
    row_id,
    sha256_hex,
    stored_attachment,
    upload_input,
)
from tests.factories import Factory

MAX_BYTES = 50 * 1024 * 1024  # the default attachment_max_bytes


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> Bucket:
    return Bucket(s3_endpoint)


@pytest.fixture
def callers(api: Api) -> Callers:
    return Callers(api)


@dataclass(frozen=True)
class World:
    scene: Scene
    attachments: dict[str, dict[str, Any]]

    def gid(self, label: str) -> str:
        """Global id of a record ("A.draft") or an attachment ("A.draft/PENDING")."""
        if label in self.attachments:
            return gid(NodeType.ATTACHMENT, self.attachments[label]["id"])
        return gid(NodeType.MEDICAL_RECORD, self.scene.id(label))


@pytest.fixture
async def world(factory: Factory, bucket: Bucket) -> World:
    """The scene of ``tests.attachments`` with objects in the bucket: A.draft's pending upload
    does not match its declaration (confirming it rejects and removes it), A.final's does."""
    scene = await build_scene(factory)
    pending = AttachmentStatus.PENDING_UPLOAD
    available = AttachmentStatus.AVAILABLE
    attachments = {
        "A.draft/PENDING": await stored_attachment(
            factory, bucket, scene, "A.draft", pending, stored=PDF[::-1]
        ),
        "A.final/PENDING": await stored_attachment(factory, bucket, scene, "A.final", pending),
        "B.draft/PENDING": await stored_attachment(
            factory, bucket, scene, "B.draft", pending, stored=PDF[::-1]
        ),
        "A.draft/AVAILABLE": await stored_attachment(factory, bucket, scene, "A.draft", available),
        "A.final/AVAILABLE": await stored_attachment(factory, bucket, scene, "A.final", available),
    }
    return World(scene, attachments)


Snapshot = tuple[dict[uuid.UUID, dict[str, Any]], dict[str, str]]


async def snapshot(
    sessionmaker: async_sessionmaker[AsyncSession], bucket: Bucket, tenant: str
) -> Snapshot:
    """The attachments rows of the tenant and of its "-other" twin, and every object stored."""
    return await attachment_rows(sessionmaker, tenant, f"{tenant}-other"), bucket.contents()


async def refused(
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    bucket: Bucket,
    tenant: str,
    document: str,
    variables: dict[str, Any],
    token: str,
) -> tuple[str, str]:
    """Sends a request that must fail and change nothing; returns its code and message."""
    before = await snapshot(sessionmaker, bucket, tenant)
    body = await api.query(document, variables, token=token)
    assert body["data"] is None, body
    codes = error_codes(body)
    assert len(codes) == 1, body
    assert await snapshot(sessionmaker, bucket, tenant) == before
    message: str = body["errors"][0]["message"]
    return codes[0], message


# --- validation of requestAttachmentUpload -----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        pytest.param("fileName", "../x.pdf", "without a path", id="name-parent-dir"),
        pytest.param("fileName", "a/b.pdf", "without a path", id="name-slash"),
        pytest.param("fileName", "a\\b.pdf", "without a path", id="name-backslash"),
        pytest.param("fileName", "..", "without a path", id="name-dotdot"),
        pytest.param("fileName", "a\x00b.pdf", "without a path", id="name-control-char"),
        pytest.param("fileName", "x" * 252 + ".pdf", "at most 255", id="name-256-chars"),
        pytest.param("fileName", "", "must not be empty", id="name-empty"),
        pytest.param("fileName", "   ", "must not be empty", id="name-blank"),
        pytest.param("fileName", "()", "letters or digits", id="name-no-letters"),
        pytest.param("contentType", "application/x-msdownload", "application/pdf", id="type-exe"),
        pytest.param("contentType", "", "must be one of", id="type-empty"),
        pytest.param("sizeBytes", 0, "at least 1", id="size-zero"),
        pytest.param("sizeBytes", -1, "at least 1", id="size-negative"),
        pytest.param("sizeBytes", MAX_BYTES + 1, f"at most {MAX_BYTES}", id="size-over-limit"),
        pytest.param("checksumSha256", "abc", "64 hexadecimal", id="sum-short"),
        pytest.param("checksumSha256", "a" * 63, "64 hexadecimal", id="sum-63"),
        pytest.param("checksumSha256", "a" * 65, "64 hexadecimal", id="sum-65"),
        pytest.param("checksumSha256", "g" * 64, "64 hexadecimal", id="sum-not-hex"),
        pytest.param("checksumSha256", "", "64 hexadecimal", id="sum-empty"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    api: Api,
    world: World,
    callers: Callers,
    bucket: Bucket,
    sessionmaker: async_sessionmaker[AsyncSession],
    field: str,
    value: object,
    says: str,
) -> None:
    variables = upload_input(world.scene.id("A.draft"))
    variables["input"][field] = value
    code, message = await refused(
        api, sessionmaker, bucket, world.scene.tenant, REQUEST_UPLOAD, variables, callers.dr_a
    )
    assert code == "BAD_USER_INPUT"
    assert message.startswith(f"input.{field}:"), message
    assert says in message, message


async def test_record_id_of_another_type_is_bad_input(
    api: Api,
    world: World,
    callers: Callers,
    bucket: Bucket,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    not_a_record = gid(NodeType.PATIENT, world.scene.id("P"))
    variables = upload_input(world.scene.id("A.draft"), recordId=not_a_record)
    code, message = await refused(
        api, sessionmaker, bucket, world.scene.tenant, REQUEST_UPLOAD, variables, callers.dr_a
    )
    assert code == "BAD_USER_INPUT"
    assert message.startswith("input.recordId:"), message


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param("scan 1 (final).pdf", "scan_1__final_.pdf", id="spaces-and-parens"),
        pytest.param("  lab.pdf  ", "lab.pdf", id="trimmed"),
        pytest.param("résumé.pdf", "r_sum_.pdf", id="non-ascii"),
        pytest.param(".hidden.pdf", "hidden.pdf", id="leading-dot"),
        pytest.param('a"b;c.pdf', "a_b_c.pdf", id="header-breaking"),
        pytest.param("x" * 251 + ".pdf", "x" * 251 + ".pdf", id="255-chars"),
    ],
)
async def test_file_name_is_sanitised(
    api: Api,
    world: World,
    callers: Callers,
    sessionmaker: async_sessionmaker[AsyncSession],
    given: str,
    stored: str,
) -> None:
    body = await api.data(
        REQUEST_UPLOAD, upload_input(world.scene.id("A.draft"), fileName=given), token=callers.dr_a
    )
    payload = body["requestAttachmentUpload"]
    attachment_id = row_id(payload["attachment"]["id"])
    assert payload["attachment"]["fileName"] == stored
    key = f"{world.scene.key_prefix('A.draft')}/{attachment_id}/{stored}"
    assert payload["upload"]["fields"]["key"] == key
    row = await attachment_row(sessionmaker, attachment_id)
    assert (row["file_name"], row["storage_key"]) == (stored, key)


async def test_limits_are_inclusive_and_input_is_normalised(
    api: Api, world: World, callers: Callers, bucket: Bucket
) -> None:
    before = bucket.contents()
    checksum = sha256_hex(b"large scan").upper()
    body = await api.data(
        REQUEST_UPLOAD,
        upload_input(
            world.scene.id("A.draft"),
            contentType=" Application/PDF ",
            sizeBytes=MAX_BYTES,
            checksumSha256=checksum,
        ),
        token=callers.dr_a,
    )
    attachment = body["requestAttachmentUpload"]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert attachment["sizeBytes"] == MAX_BYTES
    assert attachment["checksumSha256"] == checksum.lower()
    # Asking for an upload stores nothing: the client sends the bytes to the store itself.
    assert bucket.contents() == before


# --- who may do what ---------------------------------------------------------------------------

REQUEST, CONFIRM, DELETE = "request", "confirm", "delete"


def variables_for(action: str, world: World, target: str) -> tuple[str, dict[str, Any]]:
    if action == REQUEST:
        return REQUEST_UPLOAD, upload_input(world.scene.id(target))
    document = CONFIRM_UPLOAD if action == CONFIRM else DELETE_ATTACHMENT
    return document, {"id": world.gid(target)}


@pytest.mark.parametrize(
    ("action", "target", "caller", "code"),
    [
        # requestAttachmentUpload: the record's editor, while it is a DRAFT.
        (REQUEST, "A.draft", "pt_p", "FORBIDDEN"),
        (REQUEST, "A.draft", "no_role", "FORBIDDEN"),
        (REQUEST, "A.draft", "dr_b", "NOT_FOUND"),  # another provider's draft is invisible
        (REQUEST, "B.draft", "dr_a", "NOT_FOUND"),
        (REQUEST, "A.draft", "other_admin", "NOT_FOUND"),
        (REQUEST, "A.final", "dr_b", "FORBIDDEN"),  # visible, not B's
        (REQUEST, "A.final", "pt_p", "FORBIDDEN"),
        (REQUEST, "A.final", "dr_a", "INVALID_TRANSITION"),
        (REQUEST, "A.final", "admin", "INVALID_TRANSITION"),
        # confirmAttachmentUpload: the record's editor.
        (CONFIRM, "A.draft/PENDING", "pt_p", "FORBIDDEN"),
        (CONFIRM, "A.draft/PENDING", "no_role", "FORBIDDEN"),
        (CONFIRM, "A.draft/PENDING", "dr_b", "NOT_FOUND"),
        (CONFIRM, "B.draft/PENDING", "dr_a", "NOT_FOUND"),
        (CONFIRM, "A.draft/PENDING", "other_admin", "NOT_FOUND"),
        (CONFIRM, "A.final/PENDING", "dr_b", "FORBIDDEN"),
        (CONFIRM, "A.final/PENDING", "pt_p", "FORBIDDEN"),
        # deleteAttachment: providers from their own DRAFT records, admins from any.
        (DELETE, "A.draft/AVAILABLE", "pt_p", "FORBIDDEN"),
        (DELETE, "A.draft/AVAILABLE", "no_role", "FORBIDDEN"),
        (DELETE, "A.draft/AVAILABLE", "dr_b", "NOT_FOUND"),
        (DELETE, "A.draft/AVAILABLE", "other_admin", "NOT_FOUND"),
        (DELETE, "A.final/AVAILABLE", "dr_a", "FORBIDDEN"),  # not a DRAFT any more
        (DELETE, "A.final/AVAILABLE", "dr_b", "FORBIDDEN"),
        (DELETE, "A.final/AVAILABLE", "pt_p", "FORBIDDEN"),
        (DELETE, "A.final/PENDING", "pt_p", "FORBIDDEN"),
    ],
    ids=lambda value: str(value),
)
async def test_refused_and_nothing_changed(
    api: Api,
    world: World,
    callers: Callers,
    bucket: Bucket,
    sessionmaker: async_sessionmaker[AsyncSession],
    action: str,
    target: str,
    caller: str,
    code: str,
) -> None:
    document, variables = variables_for(action, world, target)
    got, _ = await refused(
        api, sessionmaker, bucket, world.scene.tenant, document, variables, callers[caller]
    )
    assert got == code


@pytest.mark.parametrize(
    ("action", "target", "caller", "status", "object_kept"),
    [
        (REQUEST, "A.draft", "dr_a", "PENDING_UPLOAD", True),
        (REQUEST, "B.draft", "admin", "PENDING_UPLOAD", True),
        (CONFIRM, "A.final/PENDING", "dr_a", "AVAILABLE", True),  # matches its declaration
        (CONFIRM, "A.draft/PENDING", "admin", "REJECTED", False),  # does not
        (DELETE, "A.draft/AVAILABLE", "dr_a", "DELETED", False),
        (DELETE, "A.final/AVAILABLE", "admin", "DELETED", False),  # admins may, after DRAFT
    ],
    ids=lambda value: str(value),
)
async def test_allowed_and_exactly_that_changed(
    api: Api,
    world: World,
    callers: Callers,
    bucket: Bucket,
    sessionmaker: async_sessionmaker[AsyncSession],
    action: str,
    target: str,
    caller: str,
    status: str,
    object_kept: bool,
) -> None:
    tenant = world.scene.tenant
    rows_before, objects_before = await snapshot(sessionmaker, bucket, tenant)
    document, variables = variables_for(action, world, target)
    body = await api.data(document, variables, token=callers[caller])
    (payload,) = body.values()
    attachment_id = row_id(payload["attachment"]["id"])
    assert payload["attachment"]["status"] == status

    rows_after, objects_after = await snapshot(sessionmaker, bucket, tenant)
    changed = {key for key in rows_after if rows_before.get(key) != rows_after[key]}
    assert changed == {attachment_id}
    assert rows_after[attachment_id]["status"] == status
    if action == REQUEST:
        assert attachment_id not in rows_before
        assert objects_after == objects_before
        return
    key = rows_after[attachment_id]["storage_key"]
    assert rows_after[attachment_id]["version"] == rows_before[attachment_id]["version"] + 1
    expected_objects = dict(objects_before)
    if not object_kept:
        del expected_objects[key]
    assert objects_after == expected_objects
