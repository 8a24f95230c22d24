"""Process-wide services, made once at start-up and closed at shutdown."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from aiobotocore.session import get_session
from botocore.config import Config

from app.auth.jwks import JWKSCache
from app.auth.tokens import TokenVerifier
from app.data.audit_writer import AuditWriter
from app.data.database import create_engine, create_sessionmaker
from app.data.migrations import head_revision
from app.data.replicas import Replicas
from app.data.request_reads import RequestReads, autocommit_engine
from app.data.status_fanout import StatusFanout
from app.data.status_stream import StatusStream
from app.data.storage import AttachmentStorage
from app.domain.opaque_ids import OpaqueIds
from app.server.persisted_queries import PersistedQueries
from app.server.rate_limit import TokenBuckets
from app.server.shutdown import OpenSockets

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from app.settings import Settings


log = logging.getLogger("medrec.services")


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    # The same pool in autocommit mode, for the reads of HTTP requests (app/data/request_reads.py).
    read_engine: AsyncEngine
    # Hot standbys that serve queries instead, when configured (app/data/replicas.py).
    replicas: Replicas | None
    sessionmaker: async_sessionmaker[AsyncSession]
    verifier: TokenVerifier
    jwks: JWKSCache
    storage: AttachmentStorage
    status_stream: StatusStream
    # Subscriptions read and audit through it (app/data/status_fanout.py).
    fanout: StatusFanout
    # The audit rows of operations not audited inside a transaction of their own (schema/audit.py).
    audit_writer: AuditWriter
    ids: OpaqueIds
    migration_head: str | None
    address_limits: TokenBuckets
    persisted: PersistedQueries
    subject_limits: TokenBuckets
    # WebSockets to close with 1001 on shutdown (app/server/shutdown.py).
    sockets: OpenSockets

    def request_reads(self, after: int | None) -> RequestReads:
        """The reads of an HTTP request: on a replica that may serve a request that must see
        position ``after`` (app/data/replicas.py), else on the primary."""
        replica = None if self.replicas is None else self.replicas.choose(after)
        if replica is None or self.replicas is None:
            return RequestReads(self.read_engine)
        return RequestReads(
            replica.engine,
            primary=self.read_engine,
            unreachable=functools.partial(self.replicas.down, replica),
        )

    @classmethod
    @asynccontextmanager
    async def running(cls, settings: Settings) -> AsyncIterator[Services]:
        async with AsyncExitStack() as stack:
            engine = create_engine(settings)
            stack.push_async_callback(engine.dispose)
            http = await stack.enter_async_context(
                httpx.AsyncClient(timeout=settings.jwks_fetch_timeout_seconds)
            )
            jwks = JWKSCache(
                settings.jwks_url,
                client=http,
                refetch_cooldown=settings.jwks_refetch_cooldown_seconds,
                max_age=settings.jwks_max_age_seconds,
            )
            # Credentials come from the standard AWS chain (environment, profile, instance role).
            s3 = await stack.enter_async_context(
                get_session().create_client(
                    "s3",
                    region_name=settings.s3_region,
                    endpoint_url=settings.s3_endpoint_url,
                    config=Config(
                        signature_version="s3v4",
                        connect_timeout=settings.s3_timeout_seconds,
                        read_timeout=settings.s3_timeout_seconds,
                        retries={"max_attempts": 2},
                        # S3-compatible stores on a plain host name want path-style addresses.
                        s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
                    ),
                )
            )
            if settings.db_pool_mode == "transaction" and settings.database_listen_url is None:
                log.warning(
                    "MEDREC_DB_POOL_MODE=transaction without MEDREC_DATABASE_LISTEN_URL: LISTEN "
                    "goes through the pooler, and PgBouncer in transaction mode delivers no "
                    "notifications (subscriptions would wait forever); RDS Proxy pins it"
                )
            status_stream = StatusStream(settings.listen_url)
            status_stream.start()
            stack.push_async_callback(status_stream.stop)
            # Half the pool at most, so subscribers can never starve HTTP requests of it.
            fanout = StatusFanout(engine, connections=max(1, settings.db_pool_size // 2))
            audit_writer = AuditWriter(engine)
            # Both stopped before the listener and the engine (callbacks run last-in first-out):
            # they let the audit rows already handed over commit.
            stack.push_async_callback(fanout.stop)
            stack.push_async_callback(audit_writer.stop)
            sessionmaker = create_sessionmaker(engine)
            read_engine = autocommit_engine(engine)
            replicas = None
            if settings.database_read_urls:
                replicas = Replicas(settings, read_engine)
                replicas.start()
                stack.push_async_callback(replicas.stop)
            yield cls(
                settings=settings,
                engine=engine,
                read_engine=read_engine,
                replicas=replicas,
                sessionmaker=sessionmaker,
                verifier=TokenVerifier(settings, jwks),
                jwks=jwks,
                storage=AttachmentStorage(s3, settings),
                status_stream=status_stream,
                fanout=fanout,
                audit_writer=audit_writer,
                ids=OpaqueIds(settings.opaque_id_key),
                migration_head=head_revision(settings.database_url),
                address_limits=TokenBuckets(settings.rate_limit_per_address),
                subject_limits=TokenBuckets(settings.rate_limit_per_subject),
                persisted=PersistedQueries(
                    sessionmaker, allow_list_only=settings.persisted_queries_only
                ),
                sockets=OpenSockets(),
            )
