"""Patients' access logs: the audit rows naming each patient, newest first, one page per patient
in one statement, read from ``audit_event_patients`` alone (never by scanning the audit trail)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, String, select, true

from app.data.pagination import (
    KeysetOrder,
    RowsPerParent,
    first_rows_per_parent,
    page_parameters,
    parse_datetime,
    parse_int,
    rows_per_parent_statement,
)
from app.domain import access_log
from app.domain.access import readable_access_logs_for, viewer_parameters
from app.domain.viewer import effective_role
from models import AuditEventPatient, Provider, table_of

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    from sqlalchemy import Select

    from app.data.database import FetchedRow, Reader
    from app.data.pagination import PageRequest
    from app.domain.viewer import Viewer
    from models.enums import Role

ACCESS_LOG_ORDER = KeysetOrder(
    "access_log",
    (AuditEventPatient.occurred_at, AuditEventPatient.audit_event_id),
    descending=True,
    decoders=(parse_datetime, parse_int),
)


@cache
def entries_statement(role: Role | None) -> Select[Any]:
    """The log's entries ``role`` may read, every patient's, unordered: each with the actor as
    the log shows it (app/domain/access_log.py)."""
    # The provider linked to the caller's subject names the actor: one probe of its index.
    actor = (
        select(Provider.given_name, Provider.family_name)
        .where(
            Provider.tenant_id == AuditEventPatient.tenant_id,
            Provider.cognito_sub == AuditEventPatient.subject,
        )
        .limit(1)
        .lateral("actor")
    )
    columns: tuple[Any, ...] = (
        AuditEventPatient.patient_id,
        AuditEventPatient.occurred_at,
        AuditEventPatient.audit_event_id,
        AuditEventPatient.action,
        AuditEventPatient.break_glass_grant_id,
        AuditEventPatient.record_ids,
        access_log.actor(AuditEventPatient.roles, actor.c.given_name, actor.c.family_name).label(
            "actor"
        ),
        access_log.actor_role(AuditEventPatient.roles).label("actor_role"),
    )
    return (
        select(*columns)
        .select_from(AuditEventPatient)
        .outerjoin(actor, true())
        .where(
            readable_access_logs_for(
                role, AuditEventPatient.tenant_id, AuditEventPatient.patient_id
            )
        )
    )


# The entries' columns as a tree reads them: type and nullability (the computed ones included).
ENTRY_COLUMNS: dict[str, Column[Any]] = {
    **{c.key: c for c in table_of(AuditEventPatient).c},
    "actor": Column("actor", String, nullable=False),
    "actor_role": Column("actor_role", access_log.ROLE_NAME, nullable=True),
}


@cache
def _statement(role: Role | None, after: bool) -> RowsPerParent:
    # The size in the text: see pagination.paged (the table is partitioned by month).
    return rows_per_parent_statement(
        entries_statement(role),
        AuditEventPatient.patient_id,
        ACCESS_LOG_ORDER,
        after,
        size_in_text=True,
    )


async def access_logs_of_patients(
    session: Reader, viewer: Viewer, patient_ids: Sequence[uuid.UUID], page: PageRequest
) -> dict[uuid.UUID, list[FetchedRow]]:
    statement = _statement(effective_role(viewer), page.after is not None)
    parameters = {**viewer_parameters(viewer), **page_parameters(page)}
    return await first_rows_per_parent(session, statement, parameters, patient_ids)
