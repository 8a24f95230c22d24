"""Which rows a viewer may read, as SQL predicates added to every statement that fetches rows.

Rows outside these predicates are never fetched, so another tenant's id behaves exactly like an id
that does not exist. The role rules of the contract narrow these further (issue #3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import Attachment, Diagnosis, MedicalRecord, Patient, Provider, RecordStatusEvent
from models.enums import AttachmentStatus

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from app.viewer import Viewer


def readable_providers(viewer: Viewer) -> ColumnElement[bool]:
    return Provider.tenant_id == viewer.tenant_id


def readable_patients(viewer: Viewer) -> ColumnElement[bool]:
    return Patient.tenant_id == viewer.tenant_id


def readable_records(viewer: Viewer) -> ColumnElement[bool]:
    return MedicalRecord.tenant_id == viewer.tenant_id


def readable_diagnoses(viewer: Viewer) -> ColumnElement[bool]:
    return Diagnosis.tenant_id == viewer.tenant_id


def readable_attachments(viewer: Viewer) -> ColumnElement[bool]:
    # A deleted attachment's object is gone; it stays in the table for the audit trail only.
    return (Attachment.tenant_id == viewer.tenant_id) & (
        Attachment.status != AttachmentStatus.DELETED
    )


def readable_status_events(viewer: Viewer) -> ColumnElement[bool]:
    return RecordStatusEvent.tenant_id == viewer.tenant_id
