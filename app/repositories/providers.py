"""Provider reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from app.access import readable_providers
from app.pagination import KeysetOrder, page_statement, parse_str, parse_uuid
from app.repositories.batched import rows_by_ids
from models import Provider

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    from sqlalchemy import Row

    from app.database import Reader
    from app.pagination import PageRequest
    from app.viewer import Viewer

# Query.providers is alphabetical, as a directory of clinicians is read.
PROVIDER_ORDER = KeysetOrder(
    "providers",
    (Provider.family_name, Provider.given_name, Provider.id),
    descending=False,
    decoders=(parse_str, parse_str, parse_uuid),
)

_COLUMNS = tuple(Provider.__table__.c)


async def providers_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    return await rows_by_ids(session, Provider, readable_providers(viewer), ids)


async def provider_page(session: Reader, viewer: Viewer, page: PageRequest) -> list[Row[Any]]:
    statement = select(*_COLUMNS).where(readable_providers(viewer))
    return list((await session.execute(page_statement(statement, PROVIDER_ORDER, page))).all())


async def count_providers(session: Reader, viewer: Viewer) -> int:
    statement = select(func.count()).select_from(Provider).where(readable_providers(viewer))
    return (await session.execute(statement)).scalar_one()
