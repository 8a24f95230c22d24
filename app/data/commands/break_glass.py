"""Making and revoking break-glass grants (providers and admins)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Text,
    bindparam,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    true,
    update,
)

from app.data.commands.common import locked_row
from app.domain.access import (
    grant_active,
    readable_columns,
    readable_grants_for,
    readable_patients_for,
    require_writer,
    viewer_parameters,
)
from app.domain.errors import NotFound
from app.domain.record_workflow import STATUS_CHANNEL
from models import BreakGlassGrant, Patient, table_of
from models.enums import Role

if TYPE_CHECKING:
    from sqlalchemy import BindParameter, Row, Select, Update
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.domain.viewer import Viewer

_GRANTS = table_of(BreakGlassGrant)


@dataclass(frozen=True, slots=True)
class NewGrant:
    patient_id: uuid.UUID
    reason: str
    minutes: int


@cache
def _grant_statement(role: Role | None) -> Select[Any]:
    """One statement: the tenant's grant-writer lock, the grant (for a patient the caller reads,
    else no row), and the notification that wakes the tenant's subscribers after commit.

    The lock is taken before the grant's sequence is drawn, so a tenant's grants become visible
    in sequence order and a subscriber reading "after N" misses none (as for status events)."""
    tenant: BindParameter[str] = bindparam("viewer_tenant_id")
    locked = select(
        func.pg_advisory_xact_lock(func.hashtextextended(literal("grants:") + tenant, 0))
    ).cte("locked")
    columns = ("tenant_id", "patient_id", "subject", "provider_id", "reason", "expires_at")
    source = (
        select(
            Patient.tenant_id,
            Patient.id,
            bindparam("subject", type_=_GRANTS.c.subject.type),
            bindparam("provider_id", type_=_GRANTS.c.provider_id.type),
            bindparam("reason", type_=_GRANTS.c.reason.type),
            func.now() + literal_column("interval '1 minute'") * bindparam("minutes"),
        )
        .select_from(locked)
        .join(Patient, true())
        .where(readable_patients_for(role), Patient.id == bindparam("patient_id"))
    )
    grant = insert(_GRANTS).from_select(columns, source).returning(*_GRANTS.c).cte("grant")
    payload = func.json_build_object("tenant", grant.c.tenant_id, "grant", grant.c.sequence)
    return select(
        *grant.c,
        grant_active(grant.c).label("active"),
        func.pg_notify(STATUS_CHANNEL, cast(payload, Text)).label("notified"),
    )


async def make_grant(connection: AsyncConnection, viewer: Viewer, new: NewGrant) -> Row[Any]:
    role = require_writer(viewer)
    grant: Row[Any] | None = (
        await connection.execute(
            _grant_statement(role),
            {
                **viewer_parameters(viewer),
                "patient_id": new.patient_id,
                "subject": viewer.subject,
                # An admin holds a grant as itself, not as a provider row.
                "provider_id": viewer.provider_id if role is Role.PROVIDER else None,
                "reason": new.reason,
                "minutes": new.minutes,
            },
        )
    ).one_or_none()
    if grant is None:
        raise NotFound("input.patientId: patient not found")
    return grant


@cache
def _lock_statement(role: Role | None) -> Select[Any]:
    return (
        select(*readable_columns(_GRANTS, role))
        .where(readable_grants_for(role), BreakGlassGrant.id == bindparam("grant_id"))
        .with_for_update(of=BreakGlassGrant)
    )


@cache
def _revoke_statement(role: Role | None) -> Update:
    return (
        update(_GRANTS)
        .where(_GRANTS.c.id == bindparam("grant_id"))
        .values(revoked_at=func.now(), revoked_by=bindparam("revoked_by"))
        .returning(*readable_columns(_GRANTS, role))
    )


async def revoke_grant(
    connection: AsyncConnection, viewer: Viewer, grant_id: uuid.UUID
) -> Row[Any]:
    """Ends a grant now: admins any of the tenant's, providers those they hold (the only ones
    they read). A grant that already ended (revoked or expired) stays as it is and is returned:
    revoking is safe to retry."""
    role = require_writer(viewer)
    grant = await locked_row(
        connection,
        _lock_statement(role),
        {**viewer_parameters(viewer), "grant_id": grant_id},
        "id",
        "break-glass grant",
    )
    if not grant.active:
        return grant
    revoked: Row[Any] = (
        await connection.execute(
            _revoke_statement(role), {"grant_id": grant_id, "revoked_by": viewer.subject}
        )
    ).one()
    return revoked
