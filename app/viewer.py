"""Who is calling: the verified token plus the provider/patient rows linked to its subject."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, exists, literal, select, union_all

from models import Patient, Provider
from models.enums import Role

if TYPE_CHECKING:
    from sqlalchemy import CompoundSelect, Select
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.request_reads import ReaderSource
    from app.tokens import VerifiedToken


@dataclass(frozen=True, slots=True)
class Viewer:
    subject: str
    roles: frozenset[Role]
    tenant_id: str | None
    provider_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    expires_at: datetime
    # False while provider_id and patient_id were not looked up: see resolve_viewer.
    links_known: bool = True


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


async def _linked(
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


async def resolve_viewer(reads: ReaderSource, token: VerifiedToken) -> Viewer:
    """The caller, with the provider and patient rows linked to the token's subject.

    Runs on every request (nothing is cached across requests), so a provider deactivated or
    unlinked since the last request acts in no role from this one on.
    With a ``custom:tenant_id`` claim only that tenant's rows count. Without one the tenant is the
    linked row's: the database links a subject once (models.SubjectLink), and several tenants
    would get none.
    An admin token that names its tenant acts as admin whatever its subject is linked to, so
    its links are looked up only when asked for (``with_links``): no statement here.
    """
    links_known = token.tenant_id is None or Role.ADMIN not in token.roles
    tenant_id, linked = (
        await _linked(reads, token.subject, token.tenant_id)
        if links_known
        else (token.tenant_id, {})
    )
    return Viewer(
        subject=token.subject,
        roles=frozenset(token.roles),
        tenant_id=tenant_id,
        provider_id=linked.get("provider"),
        patient_id=linked.get("patient"),
        expires_at=token.expires_at,
        links_known=links_known,
    )


async def with_links(reads: ReaderSource, viewer: Viewer) -> Viewer:
    """``viewer`` with its linked provider and patient rows looked up, if they were not."""
    if viewer.links_known:
        return viewer
    _, linked = await _linked(reads, viewer.subject, viewer.tenant_id)
    return replace(
        viewer,
        provider_id=linked.get("provider"),
        patient_id=linked.get("patient"),
        links_known=True,
    )


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


def effective_role(viewer: Viewer) -> Role | None:
    """The broadest role the caller can act in: a token may carry several groups.

    Providers and patients are people with rows (linked by ``cognitoSub``); a provider or patient
    token whose subject is linked to no row acts in no role, and may call ``me`` only. An
    inactive provider's link does not count (see ``resolve_viewer``): it acts in no role either.
    """
    if viewer.tenant_id is None:
        return None
    if Role.ADMIN in viewer.roles:
        return Role.ADMIN
    if Role.PROVIDER in viewer.roles and viewer.provider_id is not None:
        return Role.PROVIDER
    if Role.PATIENT in viewer.roles and viewer.patient_id is not None:
        return Role.PATIENT
    return None
