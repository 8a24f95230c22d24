"""Who is calling: the caller's identity as its verified token and linked rows give it, and the
role it acts in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from models.enums import Role


@dataclass(frozen=True, slots=True)
class Viewer:
    subject: str
    roles: frozenset[Role]
    tenant_id: str | None
    provider_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    expires_at: datetime
    # False while provider_id and patient_id were not looked up (app/auth/callers.py).
    links_known: bool = True


def effective_role(viewer: Viewer) -> Role | None:
    """The broadest role the caller can act in: a token may carry several groups.

    Providers and patients are people with rows (linked by ``cognitoSub``); a provider or patient
    token whose subject is linked to no row acts in no role, and may call ``me`` only. An
    inactive provider's link does not count (app/data/repositories/subject_links.py): it acts
    in no role either.
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
