"""The provider and patient rows linked to a login's subject (``cognito_sub``)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, exists, literal, select, union_all

from app.domain.viewer import Viewer, effective_role
from models import Patient, Provider
from models.enums import Role

if TYPE_CHECKING:
    from sqlalchemy import CompoundSelect, Select
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.data.request_reads import ReaderSource


def _links(in_tenant: bool) -> CompoundSelect[Any]:
    """The rows linked to ``:subject``, only those of ``:tenant_id`` if ``in_tenant``.

    An inactive provider's link does not count: it gives neither a role nor, to a token without
    a tenant claim (an admin's included), a tenant.
    """
    subject = bindparam("subject", type_=String())
    providers = select(literal("provider").label("kind"), Provider.id, Provider.tenant_id).where(
        Provider.cognito_sub == subject, Provider.active
    )
    patients = select(literal("patient").label("kind"), Patient.id, Patient.tenant_id).where(
        Patient.cognito_sub == subject
    )
    if in_tenant:
        tenant_id = bindparam("tenant_id", type_=String())
        providers = providers.where(Provider.tenant_id == tenant_id)
        patients = patients.where(Patient.tenant_id == tenant_id)
    return union_all(providers, patients)


# Built once: every request runs one of them (the cache key of a prebuilt statement is memoized).
_LINKS = _links(in_tenant=False)
_LINKS_IN_TENANT = _links(in_tenant=True)


async def linked(
    reads: ReaderSource, subject: str, tenant_id: str | None
) -> tuple[str | None, dict[str, uuid.UUID]]:
    """One statement: the tenant (the claim's, else the one of the linked rows, if only one) and
    the ids of the provider and patient rows linked to ``subject`` in it."""
    statement = _LINKS_IN_TENANT if tenant_id is not None else _LINKS
    async with reads() as session:
        links = (
            await session.execute(statement, {"subject": subject, "tenant_id": tenant_id})
        ).all()
    if tenant_id is None:
        tenants = {link.tenant_id for link in links}
        tenant_id = tenants.pop() if len(tenants) == 1 else None
    return tenant_id, {link.kind: link.id for link in links if link.tenant_id == tenant_id}


def _linked_row_held(table: type[Provider] | type[Patient]) -> Select[tuple[bool]]:
    """Whether the row ``:row_id`` of ``:tenant_id`` is still linked to ``:subject`` (and, for a
    provider, still active)."""
    held = exists().where(
        table.id == bindparam("row_id"),
        table.tenant_id == bindparam("tenant_id", type_=String()),
        table.cognito_sub == bindparam("subject", type_=String()),
    )
    if table is Provider:
        held = held.where(Provider.active)
    return select(held)


_HELD_BY_ROLE = {
    Role.PROVIDER: _linked_row_held(Provider),
    Role.PATIENT: _linked_row_held(Patient),
}


async def acts_through_linked_row(session: AsyncSession, viewer: Viewer, subject: str) -> bool:
    """Whether the provider or patient row ``viewer`` acts through (by its role, as resolved when
    its token arrived) is still linked to ``subject``: one statement, for callers that outlive a
    request. Admins act by their token alone."""
    role = effective_role(viewer)
    if role is Role.ADMIN:
        return True
    if role is None:
        return False
    row_id = viewer.provider_id if role is Role.PROVIDER else viewer.patient_id
    held = await session.scalar(
        _HELD_BY_ROLE[role], {"row_id": row_id, "tenant_id": viewer.tenant_id, "subject": subject}
    )
    return bool(held)
