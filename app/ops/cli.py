"""The ``medrec`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.server.logging_config import logging_config
    from app.settings import Settings

    uvicorn.run(
        "app.server.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        # Compression would keep a zlib state of a few hundred KB per subscription, for event
        # messages of a few hundred bytes.
        ws_per_message_deflate=False,
        # WebSockets are closed with 1001 first (app/server/shutdown.py); HTTP requests drain.
        timeout_graceful_shutdown=Settings().shutdown_grace_seconds,
        # JSON lines (app/server/logging_config.py), applied in every worker; the request lines are
        # the app's own (medrec.request), so uvicorn's access log stays off.
        log_config=logging_config(),
        access_log=False,
    )


def _migrate(_: argparse.Namespace) -> None:
    from app.data.migrations import upgrade
    from app.settings import Settings

    upgrade(Settings().database_url)


def _audit_partitions(_: argparse.Namespace) -> None:
    from app.data.audit_partitions import MONTHS_AHEAD, StrandedDefaultRows, maintain_partitions
    from app.data.database import create_engine
    from app.settings import Settings

    settings = Settings()

    async def run() -> None:
        engine = create_engine(settings)
        try:
            changes = await maintain_partitions(
                engine, retention_months=settings.audit_retention_months
            )
        finally:
            await engine.dispose()
        for name in changes.created:
            print(f"created {name}")
        for name, archived in changes.detached:
            print(f"detached {name} as {archived} (its rows are kept there)")
        if not changes.created and not changes.detached:
            print(
                f"nothing to do: partitions exist up to {MONTHS_AHEAD} months ahead, and none "
                f"attached is older than {settings.audit_retention_months} months"
            )

    try:
        asyncio.run(run())
    except StrandedDefaultRows as error:  # what an operator must sort out, said in full
        sys.exit(f"medrec audit-partitions: {error}")


def _seed(args: argparse.Namespace) -> None:
    from app.data.database import create_engine, create_sessionmaker
    from app.ops.audit_history import add_audit_history
    from app.ops.seed import seed_tenant
    from app.settings import Settings

    async def run() -> None:
        engine = create_engine(Settings())
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                summary = await seed_tenant(
                    session,
                    tenant_id=args.tenant,
                    patients=args.patients,
                    seed=args.seed,
                    replace=args.replace,
                )
            if args.audit_rows:
                async with engine.begin() as connection:
                    appended = await add_audit_history(connection, args.tenant, args.audit_rows)
        finally:
            await engine.dispose()
        print(summary)
        if args.audit_rows:
            print(f"audit rows: {appended}")

    asyncio.run(run())


def _register_queries(args: argparse.Namespace) -> None:
    from pathlib import Path

    from app.data.database import create_engine, create_sessionmaker
    from app.server.persisted_queries import register
    from app.settings import Settings

    documents = [Path(name).read_text() for name in args.files]

    async def run() -> list[str]:
        engine = create_engine(Settings())
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await register(session, documents)
        finally:
            await engine.dispose()

    for name, sha256 in zip(args.files, asyncio.run(run()), strict=True):
        print(f"{sha256}  {name}")


def _export_schema(_: argparse.Namespace) -> None:
    from schema.schema import export_sdl

    sys.stdout.write(export_sdl())


def _dev(args: argparse.Namespace) -> None:
    from app.ops.dev import run_dev

    run_dev(host=args.host, port=args.port)


def _watch(args: argparse.Namespace) -> None:
    from app.ops.watch import watch

    sys.exit(
        asyncio.run(
            watch(
                args.url,
                args.token,
                record_id=args.record,
                patient_id=args.patient,
                after=args.after,
            )
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medrec", description="Medical records GraphQL API")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run everything embedded, with demo data and tokens")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(run=_dev)

    serve = commands.add_parser("serve", help="production server, configured by MEDREC_* variables")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database to the newest migration")
    migrate.set_defaults(run=_migrate)

    partitions = commands.add_parser(
        "audit-partitions",
        help="make the audit trail's partitions due ahead, detach those past retention",
    )
    partitions.set_defaults(run=_audit_partitions)

    seed = commands.add_parser("seed", help="deterministic synthetic data for load tests")
    seed.add_argument("--tenant", required=True)
    seed.add_argument("--patients", type=int, required=True)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--replace", action="store_true", help="delete the tenant's data first")
    seed.add_argument(
        "--audit-rows",
        type=int,
        default=0,
        help="also this many audit rows naming the tenant's patients, over the last 36 months",
    )
    seed.set_defaults(run=_seed)

    registered = commands.add_parser(
        "register-queries",
        help="add .graphql documents to the allow-list (MEDREC_PERSISTED_QUERIES_ONLY)",
    )
    registered.add_argument("files", nargs="+", help="one document per file, sent verbatim")
    registered.set_defaults(run=_register_queries)

    watch = commands.add_parser("watch", help="print record-status events as they happen")
    watch.add_argument("--url", default="ws://127.0.0.1:8000/graphql")
    watch.add_argument("--token", required=True, help="a bearer token, with or without 'Bearer '")
    watch.add_argument("--record", help="only this record's events (a record id)")
    watch.add_argument("--patient", help="only this patient's events (a patient id)")
    watch.add_argument("--after", help="first replay the events after this sequence")
    watch.set_defaults(run=_watch)

    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.set_defaults(run=_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
