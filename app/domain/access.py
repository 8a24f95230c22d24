"""Which rows a viewer may read, as SQL predicates added to every statement that fetches rows.

Rows outside these predicates are never fetched, so another tenant's id, or a row the caller's
role may not see, behaves exactly like an id that does not exist. The rules are the contract's:

- admin: everything in its tenant but RESTRICTED records;
- provider: all patients and all non-draft records of its tenant, plus its own drafts; of the
  RESTRICTED ones only those it wrote or whose patient it is the primary provider of;
- patient: only its own patient row and its own FINALIZED/AMENDED records (RESTRICTED ones
  included), with their diagnoses and AVAILABLE attachments.
- an admin or provider holding an active break-glass grant for a patient (by token subject,
  against the database clock) also reads that patient's non-draft RESTRICTED records. A grant
  changes what its holder reads, never what it may write.

A RESTRICTED record that a caller may not read is, with everything under it, exactly like a
record that does not exist.

Providers (a clinic's directory) are readable by every role of the tenant. A provider or patient
token whose subject is linked to no row acts in no role: it reads and writes nothing. Diagnoses,
attachments and status events are readable exactly when their record is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    any_,
    bindparam,
    exists,
    false,
    func,
    literal,
    null,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import aliased

from app.domain.errors import Forbidden
from app.domain.viewer import effective_role
from models import (
    Attachment,
    BreakGlassGrant,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
    RecordStatusEvent,
)
from models.enums import AttachmentStatus, Confidentiality, RecordStatus, Role

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable, Mapping

    from sqlalchemy import BindParameter, ColumnElement, Table
    from sqlalchemy.orm import InstrumentedAttribute, QueryableAttribute
    from sqlalchemy.sql.elements import KeyedColumnElement

    from app.domain.viewer import Viewer

PATIENT_VISIBLE_STATUSES = (RecordStatus.FINALIZED, RecordStatus.AMENDED)


# Columns only some roles read (the contract's field rules); every other role reads null in their
# place, from the statement itself.
_COLUMN_READERS: Mapping[str, frozenset[Role]] = {
    "medical_records.staff_note": frozenset({Role.ADMIN, Role.PROVIDER}),
}


def grant_active(grant: Any = BreakGlassGrant) -> ColumnElement[bool]:
    """Whether a grant grants now, by the database's clock: every instance agrees. ``grant``:
    the mapped class, an alias, or the table's columns."""
    active: ColumnElement[bool] = grant.revoked_at.is_(None) & (grant.expires_at > func.now())
    return active


# Columns a table's rows carry that the statement computes (from the database's clock).
_COMPUTED_COLUMNS: Mapping[str, Callable[[Table], KeyedColumnElement[Any]]] = {
    "break_glass_grants": lambda table: grant_active(table.c).label("active"),
}


def readable_columns(table: Table, role: Role | None) -> tuple[ColumnElement[Any], ...]:
    """Every column of ``table`` as ``role`` reads it: a column kept from it is a null of the
    column's type, under the column's name. Computed columns follow the table's own."""
    computed = _COMPUTED_COLUMNS.get(table.name)
    return (
        *(
            column
            if (readers := _COLUMN_READERS.get(f"{table.name}.{column.key}")) is None
            or role in readers
            else type_coerce(null(), column.type).label(column.key)
            for column in table.c
        ),
        *(() if computed is None else (computed(table),)),
    )


def viewer_parameters(viewer: Viewer) -> dict[str, Any]:
    """The values of the ``*_for(role)`` predicates' bind parameters, passed when a statement runs.

    Those predicates name the viewer only through these parameters, so a statement built for a
    role is the same for every viewer of that role, and is built (and its cache key computed) once.
    """
    return {
        "viewer_tenant_id": viewer.tenant_id,
        "viewer_provider_id": viewer.provider_id,
        "viewer_patient_id": viewer.patient_id,
        "viewer_subject": viewer.subject,
    }


# The predicates name the viewer through these alone. A statement is built once per role (and
# cached where it is built) and run with viewer_parameters(), reads and writes alike; without
# values, a statement run without viewer_parameters() fails instead of matching NULL.
_TENANT: BindParameter[str] = bindparam("viewer_tenant_id")
_PROVIDER: BindParameter[uuid.UUID] = bindparam("viewer_provider_id")
_PATIENT: BindParameter[uuid.UUID] = bindparam("viewer_patient_id")
# Break-glass grants are held by a token subject (an admin has no provider row).
_SUBJECT: BindParameter[str] = bindparam("viewer_subject")


def readable_providers_for(role: Role | None) -> ColumnElement[bool]:
    if role is None:
        return false()
    return Provider.tenant_id == _TENANT


def readable_patients_for(role: Role | None) -> ColumnElement[bool]:
    if role is Role.ADMIN or role is Role.PROVIDER:
        return Patient.tenant_id == _TENANT
    if role is Role.PATIENT:
        return (Patient.tenant_id == _TENANT) & (Patient.id == _PATIENT)
    return false()


def _patient_visible(status: QueryableAttribute[RecordStatus]) -> ColumnElement[bool]:
    # = ANY(ARRAY[...]) rather than IN (...), which SQLAlchemy expands at execution: the text of a
    # statement compiled once (app/data/database.py's DriverStatement) is fixed. PostgreSQL plans
    # both alike.
    return status == any_(
        array([literal(value, status.type) for value in PATIENT_VISIBLE_STATUSES])
    )


def _granted(record: type[MedicalRecord]) -> ColumnElement[bool]:
    """The caller holds an active break-glass grant for the record's patient."""
    return exists(
        select(BreakGlassGrant.id).where(
            BreakGlassGrant.tenant_id == record.tenant_id,
            BreakGlassGrant.subject == _SUBJECT,
            BreakGlassGrant.patient_id == record.patient_id,
            grant_active(),
        )
    )


def _records(
    role: Role | None, record: type[MedicalRecord] = MedicalRecord, *, granted: bool = True
) -> ColumnElement[bool]:
    """``record`` may be an alias, for statements that read medical_records twice;
    ``granted=False``: what the caller reads without its break-glass grants."""
    in_tenant = record.tenant_id == _TENANT
    normal = record.confidentiality == Confidentiality.NORMAL
    not_draft = record.status != RecordStatus.DRAFT
    # Last in each OR: a NORMAL record (or the caller's own) never looks for a grant.
    if role is Role.ADMIN:
        if granted:
            return in_tenant & (normal | (not_draft & _granted(record)))
        return in_tenant & normal
    if role is Role.PROVIDER:
        own = record.provider_id == _PROVIDER
        # A RESTRICTED record is its author's and the patient's primary provider's only.
        primary = exists(
            select(Patient.id).where(
                Patient.tenant_id == record.tenant_id,
                Patient.id == record.patient_id,
                Patient.primary_provider_id == _PROVIDER,
            )
        )
        grant = (_granted(record),) if granted else ()
        return in_tenant & (not_draft | own) & or_(normal, own, primary, *grant)
    if role is Role.PATIENT:
        # The patient reads their own finalized records whatever their confidentiality.
        return in_tenant & (record.patient_id == _PATIENT) & _patient_visible(record.status)
    return false()


def _of_readable_record(
    role: Role | None,
    tenant_id: InstrumentedAttribute[str],
    record_id: InstrumentedAttribute[uuid.UUID],
    *,
    record_checked: bool,
) -> ColumnElement[bool]:
    in_tenant = tenant_id == _TENANT
    if role is None:
        return false()
    if record_checked:
        # The statement reads these rows under records that passed readable_records_for.
        return in_tenant
    # The child is readable when its record is (for admins too: a RESTRICTED record's rows are
    # not theirs): the record's own predicate, in a correlated EXISTS over an alias, so it stays
    # correct in statements that join medical_records too.
    record = aliased(MedicalRecord)
    return in_tenant & exists(
        select(record.id).where(
            record.tenant_id == tenant_id, record.id == record_id, _records(role, record)
        )
    )


def readable_records_for(role: Role | None) -> ColumnElement[bool]:
    return _records(role)


def readable_diagnoses_for(
    role: Role | None, *, record_checked: bool = False
) -> ColumnElement[bool]:
    """``record_checked``: only for statements that read the diagnoses of records which passed
    ``readable_records_for`` in the same statement (the one-statement trees)."""
    return _of_readable_record(
        role, Diagnosis.tenant_id, Diagnosis.record_id, record_checked=record_checked
    )


def readable_attachments_for(
    role: Role | None, *, record_checked: bool = False
) -> ColumnElement[bool]:
    """``record_checked`` as for ``readable_diagnoses_for``."""
    # A deleted attachment's object is gone; the row stays for the audit trail only.
    visible = Attachment.status != AttachmentStatus.DELETED
    if role is Role.PATIENT:
        visible = Attachment.status == AttachmentStatus.AVAILABLE
    return visible & _of_readable_record(
        role, Attachment.tenant_id, Attachment.record_id, record_checked=record_checked
    )


def readable_status_events_for(role: Role | None) -> ColumnElement[bool]:
    """An event is readable with its record, but a record's DRAFT events stay as private as the
    draft was: patients never see them, providers only for their own records."""
    readable = _of_readable_record(
        role, RecordStatusEvent.tenant_id, RecordStatusEvent.record_id, record_checked=False
    )
    if role is Role.PATIENT:
        readable = readable & _patient_visible(RecordStatusEvent.status)
    elif role is Role.PROVIDER:
        own = exists(
            select(MedicalRecord.id).where(
                MedicalRecord.tenant_id == RecordStatusEvent.tenant_id,
                MedicalRecord.id == RecordStatusEvent.record_id,
                MedicalRecord.provider_id == _PROVIDER,
            )
        )
        readable = readable & ((RecordStatusEvent.status != RecordStatus.DRAFT) | own)
    return readable


# A patient's access log (read from the audit trail): its admins' and its own, null for everyone
# else (the contract's field rule).
ACCESS_LOG_READERS = frozenset({Role.ADMIN, Role.PATIENT})


def readable_access_logs_for(
    role: Role | None,
    tenant_id: InstrumentedAttribute[str],
    patient_id: InstrumentedAttribute[uuid.UUID],
) -> ColumnElement[bool]:
    """Which patients' access logs ``role`` reads: an audit row's ``tenant_id`` and the
    ``patient_id`` whose log it is in."""
    in_tenant = tenant_id == _TENANT
    if role is Role.ADMIN:
        return in_tenant
    if role is Role.PATIENT:
        return in_tenant & (patient_id == _PATIENT)
    return false()


# --- Writing. Patients write nothing; the checks below run in the statement that locks the row.


def require_writer(viewer: Viewer) -> Role:
    """Admins and providers write; everyone else is refused before any row is touched."""
    role = effective_role(viewer)
    if role is not Role.ADMIN and role is not Role.PROVIDER:
        raise Forbidden("this operation needs the admin or provider role")
    return role


def require_admin(viewer: Viewer) -> None:
    if effective_role(viewer) is not Role.ADMIN:
        raise Forbidden("this operation needs the admin role")


def editable_records_for(role: Role | None) -> ColumnElement[bool]:
    """Admins edit every record of the tenant they read without a break-glass grant, providers
    their own. Statements check it on records that passed ``readable_records_for``."""
    if role is Role.ADMIN:
        return _records(role, granted=False)
    if role is Role.PROVIDER:
        return MedicalRecord.provider_id == _PROVIDER
    return false()


def readable_grants_for(role: Role | None) -> ColumnElement[bool]:
    """Admins read their tenant's grants, providers those they hold. Patients none: a grant
    shows its holder's token subject, which the access log never does (a patient's log says
    BREAK_GLASS, by whom)."""
    in_tenant = BreakGlassGrant.tenant_id == _TENANT
    if role is Role.ADMIN:
        return in_tenant
    if role is Role.PROVIDER:
        return in_tenant & (BreakGlassGrant.subject == _SUBJECT)
    return false()
