"""Creating providers (admins only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from app.data.commands.common import SUBJECT_ALREADY_LINKED, unique_violations
from app.domain.access import require_admin
from models import Provider, table_of

if TYPE_CHECKING:
    from sqlalchemy import Row
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.domain.viewer import Viewer

# As in app/data/commands/records.py: built once, values as parameters, a Core insert.
_PROVIDERS = table_of(Provider)
_INSERT = insert(_PROVIDERS).returning(*_PROVIDERS.c)

_UNIQUE = {
    "uq_providers_tenant_id_npi": "input.npi: a provider with this NPI already exists",
    **SUBJECT_ALREADY_LINKED,
}


@dataclass(frozen=True, slots=True)
class NewProvider:
    npi: str
    given_name: str
    family_name: str
    specialty: str | None
    email: str | None
    cognito_sub: str | None


async def create_provider(
    connection: AsyncConnection, viewer: Viewer, new: NewProvider
) -> Row[Any]:
    require_admin(viewer)
    with unique_violations(_UNIQUE):
        return (
            await connection.execute(
                _INSERT,
                {
                    "tenant_id": viewer.tenant_id,
                    "npi": new.npi,
                    "given_name": new.given_name,
                    "family_name": new.family_name,
                    "specialty": new.specialty,
                    "email": new.email,
                    "cognito_sub": new.cognito_sub,
                },
            )
        ).one()
