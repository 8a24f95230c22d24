"""Who is calling: the verified token plus the provider/patient rows linked to its subject."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import literal, select, union_all

from models import Patient, Provider
from models.enums import Role

if TYPE_CHECKING:
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


async def resolve_viewer(session: Reader, token: VerifiedToken) -> Viewer:
    """One statement: the provider and patient rows linked to the token's subject.

    With a ``custom:tenant_id`` claim only that tenant's rows count. Without one the tenant comes
    from the linked rows; a subject linked in several tenants is ambiguous and gets no tenant.
    """
    providers = select(literal("provider").label("kind"), Provider.id, Provider.tenant_id).where(
        Provider.cognito_sub == token.subject
    )
    patients = select(literal("patient").label("kind"), Patient.id, Patient.tenant_id).where(
        Patient.cognito_sub == token.subject
    )
    if token.tenant_id is not None:
        providers = providers.where(Provider.tenant_id == token.tenant_id)
        patients = patients.where(Patient.tenant_id == token.tenant_id)
    links = (await session.execute(union_all(providers, patients))).all()

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
