"""Configuration from the contract's ``MEDREC_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDREC_", extra="ignore", frozen=True)

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/medrec"
    # `transaction` behind a transaction-pooling PgBouncer or RDS Proxy, where consecutive
    # transactions of one connection may run on different server sessions (app/data/database.py).
    db_pool_mode: Literal["session", "transaction"] = "session"
    # LISTEN holds a server session for as long as it listens, which a transaction pooler cannot
    # give: a direct connection to the primary. Defaults to database_url.
    database_listen_url: str | None = None
    # Hot standbys that serve queries (app/data/replicas.py); one further behind than this many
    # seconds is skipped.
    database_read_urls: Annotated[tuple[str, ...], NoDecode] = ()
    replica_max_lag_seconds: Annotated[float, Field(gt=0)] = 10.0
    # Overflow connections are closed when given back, so under steady concurrency above the pool
    # size PostgreSQL forks a backend for nearly every request: keep the whole budget pooled.
    db_pool_size: int = 20
    db_max_overflow: int = 0
    # How long a request waits for a pooled connection, and for one statement, before failing.
    db_pool_timeout_seconds: float = 10.0
    db_statement_timeout_ms: int = 15_000
    # Test each connection as it leaves the pool. Off, a connection the database dropped fails
    # one statement (the caller gets "database unavailable" and may retry) and the whole pool is
    # renewed; on, that never reaches a caller, but with asyncpg every checkout costs three round
    # trips (BEGIN, an empty statement, ROLLBACK): every HTTP request checks one out.
    db_pool_pre_ping: bool = False

    # Audit partitions wholly older than this many months are detached (never deleted) at server
    # start and by `medrec audit-partitions`; the contract keeps audit rows six years.
    audit_retention_months: Annotated[int, Field(ge=1)] = 72

    # Requests: the body size past which the server answers 413 without reading further.
    max_request_bytes: int = 1024 * 1024
    # Only documents registered with `medrec register-queries` may run.
    persisted_queries_only: bool = False
    # Token buckets per process: requests a minute per client address and per token subject.
    rate_limit_per_address: int = 1200
    rate_limit_per_subject: int = 600

    # Operations past these limits are refused before execution (QUERY_TOO_COMPLEX); the depth,
    # alias and cost measures are defined in schema/limits.py.
    query_max_tokens: int = 2000
    query_max_depth: int = 12
    query_max_aliases: int = 30
    # Estimated cost per operation by role; callers without a role get the smallest.
    query_cost_limit_admin: int = 50_000
    query_cost_limit_provider: int = 50_000
    query_cost_limit_patient: int = 5_000

    cognito_region: str = "us-east-1"
    cognito_user_pool_id: str = ""
    # A comma-separated list in the environment; NoDecode keeps pydantic from expecting JSON.
    cognito_client_ids: Annotated[tuple[str, ...], NoDecode] = ()
    cognito_jwks_url: str | None = None
    # Unknown `kid`s refetch the JWKS at most this often, so garbage tokens can't hammer Cognito.
    jwks_refetch_cooldown_seconds: float = 30.0
    # The JWKS is refetched at least this often (sooner if its Cache-Control says so), so a key
    # the pool retires stops verifying tokens within this time. Zero would be a fetch per request.
    jwks_max_age_seconds: Annotated[float, Field(gt=0)] = 900.0
    jwks_fetch_timeout_seconds: float = 5.0
    token_leeway_seconds: int = 30

    # Key for the integrity check of global ids and cursors. Ids are not secrets (every read is
    # access-checked in SQL); the check rejects ids and cursors that were edited or corrupted.
    opaque_id_key: str = "medrec-opaque-id-v1"

    # Browser origins allowed to open subscriptions (same-origin pages always may).
    ws_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Browser origins allowed to call over HTTP from another origin (CORS).
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    introspection: bool = True
    # On SIGTERM, in-flight requests get this long to finish before they are cancelled.
    shutdown_grace_seconds: int = 30

    s3_bucket: str = "medrec-attachments"
    s3_region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    # Server-side encryption is always requested: SSE-KMS with this key when set, else AES256.
    s3_kms_key_id: str | None = None
    s3_storage_class: str = "INTELLIGENT_TIERING"
    s3_upload_expiry_seconds: int = 15 * 60
    s3_download_expiry_seconds: int = 5 * 60
    s3_timeout_seconds: float = 10.0
    attachment_max_bytes: int = 50 * 1024 * 1024
    attachment_content_types: Annotated[tuple[str, ...], NoDecode] = (
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/tiff",
        "application/dicom",
        "text/plain",
    )

    @field_validator(
        "cognito_client_ids",
        "database_read_urls",
        "attachment_content_types",
        "ws_allowed_origins",
        "cors_origins",
        mode="before",
    )
    @classmethod
    def _split_client_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @cached_property
    def listen_url(self) -> str:
        return self.database_listen_url or self.database_url

    @cached_property
    def cognito_issuer(self) -> str:
        return (
            f"https://cognito-idp.{self.cognito_region}.amazonaws.com/{self.cognito_user_pool_id}"
        )

    @cached_property
    def jwks_url(self) -> str:
        return self.cognito_jwks_url or f"{self.cognito_issuer}/.well-known/jwks.json"


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
