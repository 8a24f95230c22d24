"""Process-wide services, made once at start-up and closed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from app.database import create_engine, create_sessionmaker
from app.jwks import JWKSCache
from app.migrations import head_revision
from app.opaque_ids import OpaqueIds
from app.tokens import TokenVerifier

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from app.settings import Settings


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    verifier: TokenVerifier
    ids: OpaqueIds
    migration_head: str | None

    @classmethod
    def start(cls, settings: Settings) -> Services:
        engine = create_engine(settings)
        http = httpx.AsyncClient(timeout=settings.jwks_fetch_timeout_seconds)
        jwks = JWKSCache(
            settings.jwks_url, client=http, refetch_cooldown=settings.jwks_refetch_cooldown_seconds
        )
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            http=http,
            verifier=TokenVerifier(settings, jwks),
            ids=OpaqueIds(settings.opaque_id_key),
            migration_head=head_revision(settings.database_url),
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self.engine.dispose()
