"""A patient's access log: the audit trail's rows that name the patient, as a person reads them.

The actor is named as a patient would recognise them, never by a token subject: the provider
linked to the subject, else a description of the role it acted in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.enums import Role

if TYPE_CHECKING:
    from collections.abc import Collection

# Ranked as app/domain/viewer.py's effective_role ranks a token's groups.
_RANKED = (Role.ADMIN, Role.PROVIDER, Role.PATIENT)
_UNNAMED = {
    Role.ADMIN: "clinic administrator",
    Role.PROVIDER: "clinic staff",
    Role.PATIENT: "the patient",
}


def actor_role(roles: Collection[str]) -> Role | None:
    """The role an audited caller acted in, from the groups its audit row lists."""
    return next((role for role in _RANKED if role.value in roles), None)


def actor(
    role: Role | None, provider_given_name: str | None, provider_family_name: str | None
) -> str:
    """The names of the provider linked to the caller's subject, if any."""
    if provider_given_name is not None and provider_family_name is not None:
        return f"{provider_given_name} {provider_family_name}"
    return "unknown caller" if role is None else _UNNAMED[role]
