"""Attachments: issuing presigned uploads, confirming what arrived, deleting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from app.data.commands.common import insert_under, locked_row, versioned_update
from app.data.commands.records import lock_record, require_editor
from app.domain.access import (
    editable_records_for,
    readable_attachments_for,
    require_writer,
    viewer_parameters,
)
from app.domain.attachment_rules import object_key
from app.domain.errors import BadUserInput, Forbidden
from app.domain.record_workflow import MAX_ATTACHMENTS, require_draft, rows_under
from app.domain.viewer import effective_role
from models import Attachment, MedicalRecord, table_of
from models.enums import AttachmentStatus, RecordStatus, Role

if TYPE_CHECKING:
    from sqlalchemy import Row, Select
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.data.storage import AttachmentStorage, PresignedPost
    from app.domain.viewer import Viewer

# As in app/data/commands/records.py: statements built once, values as parameters, Core writes.
_ATTACHMENTS = table_of(Attachment)
_ATTACHMENT = tuple(_ATTACHMENTS.c)
_INSERT = insert_under(
    _ATTACHMENTS,
    (
        *("id", "tenant_id", "record_id", "patient_id", "file_name", "content_type"),
        *("size_bytes", "checksum_sha256", "status", "storage_key"),
    ),
    rows_under(_ATTACHMENTS, _ATTACHMENTS.c.status != AttachmentStatus.DELETED) < MAX_ATTACHMENTS,
)


@dataclass(frozen=True, slots=True)
class NewAttachment:
    record_id: uuid.UUID
    file_name: str
    content_type: str
    size_bytes: int
    checksum_sha256: str


async def request_upload(
    connection: AsyncConnection, viewer: Viewer, storage: AttachmentStorage, new: NewAttachment
) -> tuple[Row[Any], PresignedPost]:
    """Only those who may edit the record attach to it, and only while it is a DRAFT."""
    require_writer(viewer)
    record = await lock_record(connection, viewer, new.record_id, "input.recordId")
    require_editor(record)
    require_draft(record.status)
    attachment_id = uuid.uuid4()
    key = object_key(record.tenant_id, record.id, record.visit_date, attachment_id, new.file_name)
    attachment = (
        await connection.execute(
            _INSERT,
            {
                "id": attachment_id,
                "tenant_id": record.tenant_id,
                "record_id": record.id,
                "patient_id": record.patient_id,
                "file_name": new.file_name,
                "content_type": new.content_type,
                "size_bytes": new.size_bytes,
                "checksum_sha256": new.checksum_sha256,
                "status": AttachmentStatus.PENDING_UPLOAD,
                "storage_key": key,
            },
        )
    ).one_or_none()
    if attachment is None:
        raise BadUserInput(f"input.recordId: a record holds at most {MAX_ATTACHMENTS} attachments")
    upload = await storage.presign_upload(
        key,
        content_type=new.content_type,
        size=new.size_bytes,
        sha256_hex=new.checksum_sha256,
        metadata={
            "tenant": record.tenant_id,
            "record": str(record.id),
            "attachment": str(attachment_id),
        },
    )
    return attachment, upload


@cache
def _lock_statement(role: Role | None) -> Select[*tuple[Any, ...]]:
    return (
        select(
            *_ATTACHMENT,
            editable_records_for(role).label("may_edit"),
            MedicalRecord.status.label("record_status"),
        )
        .join(
            MedicalRecord,
            (MedicalRecord.tenant_id == Attachment.tenant_id)
            & (MedicalRecord.id == Attachment.record_id),
        )
        .where(readable_attachments_for(role), Attachment.id == bindparam("attachment_id"))
        .with_for_update(of=Attachment)
    )


async def _lock_attachment(
    connection: AsyncConnection, viewer: Viewer, attachment_id: uuid.UUID
) -> Row[Any]:
    """The attachment, locked, with ``may_edit`` (its record's rule) and ``record_status``."""
    return await locked_row(
        connection,
        _lock_statement(effective_role(viewer)),
        {**viewer_parameters(viewer), "attachment_id": attachment_id},
        "id",
        "attachment",
    )


_SET_STATUS = versioned_update(_ATTACHMENTS, "attachment_id")
_SET_UPLOADED = versioned_update(_ATTACHMENTS, "attachment_id", "uploaded_at")


async def _set_status(
    connection: AsyncConnection,
    attachment_id: uuid.UUID,
    status: AttachmentStatus,
    *,
    uploaded: bool = False,
) -> Row[Any]:
    statement = _SET_UPLOADED if uploaded else _SET_STATUS
    parameters = {"status": status, "attachment_id": attachment_id}
    return (await connection.execute(statement, parameters)).one()


async def confirm_upload(
    connection: AsyncConnection,
    viewer: Viewer,
    storage: AttachmentStorage,
    attachment_id: uuid.UUID,
) -> Row[Any]:
    """AVAILABLE when the stored object is exactly what was declared, REJECTED (and removed)
    otherwise. Confirming again answers with the outcome already reached."""
    require_writer(viewer)
    attachment = await _lock_attachment(connection, viewer, attachment_id)
    require_editor(attachment)
    if attachment.status is not AttachmentStatus.PENDING_UPLOAD:
        return attachment
    stored = await storage.inspect(attachment.storage_key)
    if stored is None:
        raise BadUserInput("id: nothing has been uploaded for this attachment yet")
    if (
        stored.size == attachment.size_bytes
        and (stored.content_type or "").lower() == attachment.content_type
        and stored.sha256_hex == attachment.checksum_sha256
    ):
        return await _set_status(
            connection, attachment.id, AttachmentStatus.AVAILABLE, uploaded=True
        )
    rejected = await _set_status(connection, attachment.id, AttachmentStatus.REJECTED)
    # The stray object must not outlive the verdict; a failure here rolls the verdict back.
    await storage.delete(attachment.storage_key)
    return rejected


async def delete_attachment(
    connection: AsyncConnection,
    viewer: Viewer,
    storage: AttachmentStorage,
    attachment_id: uuid.UUID,
) -> Row[Any]:
    """Providers delete from their own DRAFT records; admins from any record of the tenant."""
    require_writer(viewer)
    attachment = await _lock_attachment(connection, viewer, attachment_id)
    require_editor(attachment)
    if (
        effective_role(viewer) is not Role.ADMIN
        and attachment.record_status is not RecordStatus.DRAFT
    ):
        raise Forbidden("only admins may delete attachments of a record that is not a DRAFT")
    deleted = await _set_status(connection, attachment.id, AttachmentStatus.DELETED)
    # Deleted inside the transaction: if the store refuses, the row stays as it was.
    await storage.delete(attachment.storage_key)
    return deleted
