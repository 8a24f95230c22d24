"""Provider reads, built once per role and shape like the record reads."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from app.data.database import fetched_rows
from app.data.pagination import KeysetOrder, page_parameters, paged, parse_str, parse_uuid
from app.data.repositories.batched import rows_by_ids
from app.domain.access import readable_providers_for, viewer_parameters
from app.domain.viewer import effective_role
from models import Provider

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    from sqlalchemy import Select

    from app.data.database import FetchedRow, Reader
    from app.data.pagination import PageRequest
    from app.domain.viewer import Viewer
    from models.enums import Role

# Query.providers is alphabetical, as a directory of clinicians is read.
PROVIDER_ORDER = KeysetOrder(
    "providers",
    (Provider.family_name, Provider.given_name, Provider.id),
    descending=False,
    decoders=(parse_str, parse_str, parse_uuid),
)

_COLUMNS = tuple(Provider.__table__.c)


@cache
def _page(role: Role | None, after: bool) -> Select[Any]:
    return paged(select(*_COLUMNS).where(readable_providers_for(role)), PROVIDER_ORDER, after)


@cache
def _count(role: Role | None) -> Select[int]:
    return select(func.count()).select_from(Provider).where(readable_providers_for(role))


async def providers_by_ids(
    session: Reader, viewer: Viewer, ids: Sequence[uuid.UUID]
) -> list[FetchedRow]:
    return await rows_by_ids(session, viewer, Provider, readable_providers_for, ids)


async def provider_page(session: Reader, viewer: Viewer, page: PageRequest) -> list[FetchedRow]:
    statement = _page(effective_role(viewer), page.after is not None)
    parameters = {**viewer_parameters(viewer), **page_parameters(page)}
    return fetched_rows(await session.execute(statement, parameters))


async def count_providers(session: Reader, viewer: Viewer) -> int:
    statement = _count(effective_role(viewer))
    return (await session.execute(statement, viewer_parameters(viewer))).scalar_one()
