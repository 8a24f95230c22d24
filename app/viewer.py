"""Who is calling: the verified token plus the provider/patient rows linked to its subject."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, literal, select, union_all

from models import Patient, Provider
from models.enums import Role

if TYPE_CHECKING:
    from sqlalchemy import CompoundSelect

    from app.database import Reader
    from app.tokens import VerifiedToken


@dataclass(frozen=True, slots=True)
class Viewer:
    subject: str
    roles: frozenset[Role]
    tenant_id: str | None
    provider_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    expires_at: datetime


def _links(in_tenant: bool) -> CompoundSelect[Any]:
    """The rows linked to ``:subject``, only those of ``:tenant_id`` if ``in_tenant``."""
    subject = bindparam("subject", type_=String())
    providers = select(literal("provider").label("kind"), Provider.id, Provider.tenant_id).where(
        Provider.cognito_sub == subject
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


async def resolve_viewer(session: Reader, token: VerifiedToken) -> Viewer:
    """One statement: the provider and patient rows linked to the token's subject.

    With a ``custom:tenant_id`` claim only that tenant's rows count. Without one the tenant comes
    from the linked rows; a subject linked in several tenants is ambiguous and gets no tenant.
    """
    statement = _LINKS_IN_TENANT if token.tenant_id is not None else _LINKS
    parameters = {"subject": token.subject, "tenant_id": token.tenant_id}
    links = (await session.execute(statement, parameters)).all()

    tenant_id = token.tenant_id
    if tenant_id is None:
        tenants = {link.tenant_id for link in links}
        tenant_id = tenants.pop() if len(tenants) == 1 else None
    linked = {link.kind: link.id for link in links if link.tenant_id == tenant_id}
    return Viewer(
        subject=token.subject,
        roles=frozenset(token.roles),
        tenant_id=tenant_id,
        provider_id=linked.get("provider"),
        patient_id=linked.get("patient"),
        expires_at=token.expires_at,
    )
