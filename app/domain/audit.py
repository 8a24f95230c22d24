"""The audit trail: one append-only row per operation that reads or changes patient data.

A mutation appends its row inside its own transaction, so a change is never committed unaudited.
Reads, and operations that failed, hand their row to the process's AuditWriter once execution
ends (app/data/audit_writer.py), and the response is sent only after it committed; if that append
fails the request fails with it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from models import (
    Attachment,
    AuditEvent,
    Base,
    BreakGlassGrant,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
    RecordStatusEvent,
)
from models.enums import AccessAction

if TYPE_CHECKING:
    from app.domain.viewer import Viewer
    from models.enums import AuditOutcome


@dataclass(frozen=True, slots=True)
class Ownership:
    """The columns of a row that name the patient, and the record, whose data it is."""

    patient: str
    record: str | None = None
    # The columns are arrays of ids (an audit row names many patients).
    many: bool = False


# Every table the API serves, and whose data its rows are. Each path that hands rows to a caller
# (the DataLoaders, the one-statement trees, mutations' payloads, subscription payloads) notes them
# from here, so a table is audited by being listed once; None: the row is no patient's data.
OWNERSHIP: Mapping[type[Base], Ownership | None] = {
    Patient: Ownership(patient="id"),
    MedicalRecord: Ownership(patient="patient_id", record="id"),
    Diagnosis: Ownership(patient="patient_id", record="record_id"),
    Attachment: Ownership(patient="patient_id", record="record_id"),
    RecordStatusEvent: Ownership(patient="patient_id", record="record_id"),
    AuditEvent: Ownership(patient="patient_ids", record="record_ids", many=True),
    BreakGlassGrant: Ownership(patient="patient_id"),
    Provider: None,  # the clinic's directory
}


def query_sha256(query: str | None) -> str:
    return hashlib.sha256((query or "").encode()).hexdigest()


@dataclass(slots=True)
class AuditTrail:
    """What one request touched, collected as rows are handed to the caller."""

    request_id: str
    client_address: str | None
    viewer: Viewer | None
    operation_name: str | None = None
    operation_type: str = "query"
    query: str | None = None
    patient_ids: set[uuid.UUID] = field(default_factory=set)
    record_ids: set[uuid.UUID] = field(default_factory=set)
    attachment_ids: set[uuid.UUID] = field(default_factory=set)
    # Set when everything the request did so far was audited along with it.
    appended_in_transaction: bool = False
    # Set by an operation whose access its type does not tell (a break-glass grant made).
    action: AccessAction | None = None
    # When the reads of the row being collected began: the row names the break-glass grant the
    # caller held for a patient it names at any moment since (app/data/audit_writer.py).
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    def describe_operation(
        self, operation_name: str | None, operation_type: str, query: str | None
    ) -> None:
        self.operation_name = operation_name
        self.operation_type = operation_type
        self.query = query

    def touch_row(self, table: type[Base], row: Any) -> None:
        """Notes the patient (and record) whose data ``row``, of ``table``, is."""
        owner = OWNERSHIP[table]
        if owner is None:
            return
        if owner.many:
            self.patient_ids.update(getattr(row, owner.patient))
            self.record_ids.update(getattr(row, owner.record or ""))
            return
        self.patient_ids.add(getattr(row, owner.patient))
        if owner.record is not None:
            self.record_ids.add(getattr(row, owner.record))

    def touch_tree(self, patient_ids: Iterable[uuid.UUID], record_ids: Iterable[uuid.UUID]) -> None:
        """What a one-statement tree read named, from the same OWNERSHIP columns."""
        self.patient_ids.update(patient_ids)
        self.record_ids.update(record_ids)

    def touch_file(
        self, attachment_id: uuid.UUID, record_id: uuid.UUID, patient_id: uuid.UUID
    ) -> None:
        """An attachment whose file the caller is handed (a download URL) or changed."""
        self.attachment_ids.add(attachment_id)
        self.record_ids.add(record_id)
        self.patient_ids.add(patient_id)

    @property
    def touched_anything(self) -> bool:
        return bool(self.patient_ids or self.record_ids or self.attachment_ids)

    def appended(self) -> None:
        """The operation's row committed with its work (a change's transaction), or before a
        subscription's event was sent; later rows start afresh."""
        self.appended_in_transaction = True
        self.patient_ids.clear()
        self.record_ids.clear()
        self.attachment_ids.clear()
        self.since = datetime.now(UTC)
        self.action = None

    def access_action(self) -> AccessAction:
        if self.action is not None:
            return self.action
        # A change's response read after its transaction is a read.
        if self.operation_type == "mutation" and not self.appended_in_transaction:
            return AccessAction.CHANGED
        if self.attachment_ids:
            return AccessAction.DOWNLOADED_FILE
        return AccessAction.VIEWED

    def event(self, outcome: AuditOutcome) -> dict[str, Any]:
        viewer = self.viewer
        return {
            "tenant_id": viewer.tenant_id if viewer else None,
            "subject": viewer.subject if viewer else None,
            "roles": sorted(role.value for role in viewer.roles) if viewer else [],
            "operation_name": self.operation_name[:200] if self.operation_name else None,
            "operation_type": self.operation_type,
            "query_sha256": query_sha256(self.query),
            "patient_ids": sorted(self.patient_ids),
            "record_ids": sorted(self.record_ids),
            "attachment_ids": sorted(self.attachment_ids),
            "outcome": outcome,
            "action": self.access_action(),
            "since": self.since,
            "client_address": self.client_address,
            "request_id": self.request_id,
        }
