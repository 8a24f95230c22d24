"""Real `medrec serve` processes for the tests that need one: WebSockets, browsers, faults."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from app.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_environment(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment that configures a server process like the in-process test app."""
    return {
        **os.environ,
        "MEDREC_DATABASE_URL": settings.database_url,
        "MEDREC_DB_POOL_MODE": settings.db_pool_mode,
        "MEDREC_DATABASE_LISTEN_URL": settings.listen_url,
        "MEDREC_DATABASE_READ_URLS": ",".join(settings.database_read_urls),
        "MEDREC_REPLICA_MAX_LAG_SECONDS": str(settings.replica_max_lag_seconds),
        "MEDREC_COGNITO_REGION": settings.cognito_region,
        "MEDREC_COGNITO_USER_POOL_ID": settings.cognito_user_pool_id,
        "MEDREC_COGNITO_CLIENT_IDS": ",".join(settings.cognito_client_ids),
        "MEDREC_COGNITO_JWKS_URL": settings.jwks_url,
        "MEDREC_S3_BUCKET": settings.s3_bucket,
        "MEDREC_S3_REGION": settings.s3_region,
        "MEDREC_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "MEDREC_RATE_LIMIT_PER_ADDRESS": str(settings.rate_limit_per_address),
        "MEDREC_RATE_LIMIT_PER_SUBJECT": str(settings.rate_limit_per_subject),
        **overrides,
    }


@contextmanager
def serving(environment: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """A `medrec serve` process, once ready; yields its base URL."""
    with serving_process(environment, workers=workers) as (url, _):
        yield url


@contextmanager
def serving_process(
    environment: dict[str, str], *, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A `medrec serve` process, once ready; yields its base URL and the process."""
    port = free_port()
    command = [sys.executable, "-m", "app.ops.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "medrec serve exited"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "medrec serve did not become ready"
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)
