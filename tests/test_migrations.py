"""The migrations build exactly the declared tables, and undo cleanly."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.data import migrations
from app.data.audit_partitions import is_partition_name
from models import Base
from tests.postgres import scratch_database


def _table_names(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            enums = (
                await connection.execute(text("SELECT typname FROM pg_type WHERE typtype = 'e'"))
            ).scalars()
            names |= {f"enum:{name}" for name in enums}
        await engine.dispose()
        return names

    return asyncio.run(read())


def _declared(name: str | None, type_: str, parent_names: object) -> bool:
    # The audit tables' partitions are made at run time, as alembic/env.py tells autogenerate.
    return not (type_ == "table" and name is not None and is_partition_name(name))


def _schema_drift(url: str) -> list[Any]:
    async def compare() -> list[Any]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"include_name": _declared}),
                    Base.metadata,
                )
            )
        await engine.dispose()
        return list(diff)

    return asyncio.run(compare())


@pytest.fixture(scope="module")
def scratch_database_url() -> Any:
    with scratch_database() as url:
        yield url


def test_upgrade_downgrade_upgrade(scratch_database_url: str) -> None:
    migrations.upgrade(scratch_database_url)
    created = _table_names(scratch_database_url)
    assert {
        "providers",
        "patients",
        "medical_records",
        "diagnoses",
        "attachments",
        "record_status_events",
        "audit_events",
        "enum:record_status",
    } <= created

    migrations.downgrade(scratch_database_url, "base")
    assert _table_names(scratch_database_url) == {"alembic_version"}

    migrations.upgrade(scratch_database_url)
    assert _table_names(scratch_database_url) == created


def test_migrations_match_the_models(scratch_database_url: str) -> None:
    migrations.upgrade(scratch_database_url)
    assert _schema_drift(scratch_database_url) == []


def _run(url: str, *statements: str) -> list[Any]:
    """Runs ``statements`` in one transaction; the rows of the last one, if it returns any."""

    async def run() -> list[Any]:
        engine = create_async_engine(url)
        rows: list[Any] = []
        async with engine.begin() as connection:
            for statement in statements:
                result = await connection.execute(text(statement))
                rows = list(result.all()) if result.returns_rows else []
        await engine.dispose()
        return rows

    return asyncio.run(run())


_PROVIDER = (
    "INSERT INTO providers (id, tenant_id, npi, given_name, family_name, cognito_sub) "
    "VALUES (gen_random_uuid(), '{tenant}', '{npi}', 'G', 'F', '{subject}') RETURNING id"
)
_PATIENT = (
    "INSERT INTO patients (id, tenant_id, mrn, given_name, family_name, date_of_birth, sex, "
    "cognito_sub) VALUES (gen_random_uuid(), '{tenant}', '{mrn}', 'G', 'F', '1980-01-01', "
    "'FEMALE', '{subject}') RETURNING id"
)


def test_the_subject_links_migration_refuses_subjects_linked_twice_and_says_how_many() -> None:
    with scratch_database() as url:
        migrations.upgrade(url, "c4e1a9d07b21")
        _run(
            url,
            # Linked in two tenants, as a provider and a patient.
            _PROVIDER.format(tenant="a", npi="1234567893", subject="shared-1"),
            _PATIENT.format(tenant="b", mrn="M1", subject="shared-1"),
            # Linked to two patients of different tenants.
            _PATIENT.format(tenant="a", mrn="M2", subject="shared-2"),
            _PATIENT.format(tenant="b", mrn="M2", subject="shared-2"),
            _PATIENT.format(tenant="a", mrn="M3", subject="alone"),
        )

        with pytest.raises(RuntimeError, match=r"^2 Cognito subject\(s\) are linked to more"):
            migrations.upgrade(url)
        assert _run(url, "SELECT version_num FROM alembic_version") == [("c4e1a9d07b21",)]
        assert "subject_links" not in _table_names(url)

        _run(url, "UPDATE patients SET cognito_sub = NULL WHERE tenant_id = 'b'")
        migrations.upgrade(url)
        linked = _run(url, "SELECT subject FROM subject_links ORDER BY subject")
        assert linked == [("alone",), ("shared-1",), ("shared-2",)]


_AUDIT_ROWS = (
    "INSERT INTO audit_events (occurred_at, tenant_id, operation_type, query_sha256, outcome, "
    "request_id, patient_ids) SELECT now() - i * interval '40 days', 'a', 'query', 'sha', 'ok', "
    "'r' || i, ARRAY[gen_random_uuid(), gen_random_uuid()] FROM generate_series(0, 11) i"
)


def test_the_partitioning_migration_keeps_every_audit_row_and_undoes_cleanly() -> None:
    with scratch_database() as url:
        migrations.upgrade(url, "9c5e3a1b4d86")
        _run(url, _AUDIT_ROWS)
        before = _run(url, "SELECT * FROM audit_events ORDER BY id")

        migrations.upgrade(url, "a4c8e2f6b1d3")
        assert _run(url, "SELECT * FROM audit_events ORDER BY id") == before
        # Each row in the partition of its month, and found by each patient it names.
        assert _run(
            url,
            "SELECT count(*) FROM audit_events WHERE tableoid::regclass::text <> "
            "'audit_events_' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY_MM')",
        ) == [(0,)]
        assert sorted(
            _run(
                url,
                "SELECT tenant_id, patient_id, occurred_at, audit_event_id "
                "FROM audit_event_patients",
            )
        ) == sorted(
            (row.tenant_id, patient_id, row.occurred_at, row.id)
            for row in before
            for patient_id in row.patient_ids
        )
        [(new_id,)] = _run(
            url,
            "INSERT INTO audit_events (tenant_id, operation_type, query_sha256, outcome, "
            "request_id) VALUES ('a', 'query', 'sha', 'ok', 'new') RETURNING id",
        )
        assert new_id == before[-1].id + 1
        oldest = f"audit_events_{before[-1].occurred_at:%Y_%m}"
        with pytest.raises(DBAPIError, match=f"{oldest} is append-only"):
            _run(url, f"DELETE FROM {oldest}")  # noqa: S608

        migrations.downgrade(url, "9c5e3a1b4d86")
        after = _run(url, "SELECT * FROM audit_events ORDER BY id")
        assert after[:-1] == before
        assert after[-1].request_id == "new"
        assert _run(url, "SELECT relkind::text FROM pg_class WHERE relname = 'audit_events'") == [
            ("r",)
        ]
        assert "audit_event_patients" not in _table_names(url)
        assert not any(is_partition_name(name) for name in _table_names(url))
        assert _run(
            url, "SELECT indexname FROM pg_indexes WHERE tablename = 'audit_events' ORDER BY 1"
        ) == [
            ("ix_audit_events_patient_ids",),
            ("ix_audit_events_tenant_occurred",),
            ("pk_audit_events",),
        ]
        with pytest.raises(DBAPIError, match="audit_events is append-only"):
            _run(url, "DELETE FROM audit_events")
        [(next_id,)] = _run(
            url,
            "INSERT INTO audit_events (tenant_id, operation_type, query_sha256, outcome, "
            "request_id) VALUES ('a', 'query', 'sha', 'ok', 'next') RETURNING id",
        )
        assert next_id == new_id + 1

        migrations.upgrade(url)
        assert _schema_drift(url) == []


def test_the_break_glass_migration_gives_every_audit_row_its_access_action() -> None:
    with scratch_database() as url:
        migrations.upgrade(url, "a4c8e2f6b1d3")
        _run(
            url,
            "INSERT INTO audit_events (tenant_id, operation_type, query_sha256, outcome, "
            "request_id, attachment_ids) VALUES "
            "('a', 'query', 'sha', 'ok', 'read', '{}'), "
            "('a', 'mutation', 'sha', 'ok', 'change', ARRAY[gen_random_uuid()]), "
            "('a', 'query', 'sha', 'ok', 'download', ARRAY[gen_random_uuid()]), "
            "('a', 'subscription', 'sha', 'ok', 'event', '{}')",
        )
        migrations.upgrade(url)
        assert _run(
            url,
            "SELECT request_id, action::text, break_glass_grant_id FROM audit_events ORDER BY id",
        ) == [
            ("read", "VIEWED", None),
            ("change", "CHANGED", None),
            ("download", "DOWNLOADED_FILE", None),
            ("event", "VIEWED", None),
        ]
        # Still append-only once the backfill is done.
        with pytest.raises(DBAPIError, match="append-only"):
            _run(url, "UPDATE audit_events SET action = 'CHANGED'")

        migrations.downgrade(url, "a4c8e2f6b1d3")
        assert _run(url, "SELECT count(*) FROM audit_events") == [(4,)]
        assert _run(url, "SELECT to_regclass('break_glass_grants')") == [(None,)]


_RECORD = (
    "INSERT INTO medical_records (id, tenant_id, patient_id, provider_id, record_type, "
    "visit_date) VALUES ('{id}', 'a', '{patient}', '{provider}', 'CONSULTATION', now())"
)
_PATIENT_ROWS = (
    "SELECT audit_row.request_id, patient_row.patient_id, patient_row.action::text, "
    "patient_row.subject, patient_row.roles, patient_row.record_ids, "
    "patient_row.break_glass_grant_id FROM audit_event_patients AS patient_row "
    "JOIN audit_events AS audit_row ON audit_row.id = patient_row.audit_event_id "
    "ORDER BY audit_row.id, patient_row.patient_id"
)


def _audit_row(request_id: str, patients: list[Any], records: list[Any], grant: str) -> str:
    def array(ids: list[Any]) -> str:
        return f"ARRAY[{', '.join(repr(str(i)) for i in ids)}]::uuid[]" if ids else "'{}'"

    # This module's own test values, not input.
    return (
        "INSERT INTO audit_events (tenant_id, subject, roles, operation_type, query_sha256, "  # noqa: S608
        "outcome, request_id, action, patient_ids, record_ids, break_glass_grant_id) VALUES "
        f"('a', 'sub-{request_id}', '{{PROVIDER}}', 'query', 'sha', 'ok', '{request_id}', "
        f"'VIEWED', {array(patients)}, {array(records)}, {grant})"
    )


def test_the_access_log_migration_gives_each_patient_row_what_its_log_shows() -> None:
    with scratch_database() as url:
        migrations.upgrade(url, "b7d1f3a9c2e5")
        [(provider,)] = _run(url, _PROVIDER.format(tenant="a", npi="1000000004", subject="p"))
        patients = sorted(
            _run(url, _PATIENT.format(tenant="a", mrn=mrn, subject=mrn))[0][0]
            for mrn in ("m1", "m2")
        )
        records = {patient: uuid.uuid4() for patient in patients}
        for patient, record in records.items():
            _run(url, _RECORD.format(id=record, patient=patient, provider=provider))
        grant = uuid.uuid4()
        # One row naming both patients and both records, one naming a patient and no record.
        _run(url, _audit_row("both", patients, list(records.values()), f"'{grant}'"))
        _run(url, _audit_row("one", patients[:1], [], "NULL"))

        migrations.upgrade(url)
        expected = [
            (
                "both",
                patients[0],
                "VIEWED",
                "sub-both",
                ["PROVIDER"],
                [records[patients[0]]],
                grant,
            ),
            (
                "both",
                patients[1],
                "VIEWED",
                "sub-both",
                ["PROVIDER"],
                [records[patients[1]]],
                grant,
            ),
            ("one", patients[0], "VIEWED", "sub-one", ["PROVIDER"], [], None),
        ]
        assert _run(url, _PATIENT_ROWS) == expected

        # Rows written from now on get the same, and none can be changed.
        _run(url, _audit_row("later", patients, list(records.values()), "NULL"))
        assert _run(url, _PATIENT_ROWS)[3:] == [
            (
                "later",
                patients[0],
                "VIEWED",
                "sub-later",
                ["PROVIDER"],
                [records[patients[0]]],
                None,
            ),
            (
                "later",
                patients[1],
                "VIEWED",
                "sub-later",
                ["PROVIDER"],
                [records[patients[1]]],
                None,
            ),
        ]
        with pytest.raises(DBAPIError, match="append-only"):
            _run(url, "UPDATE audit_event_patients SET subject = 'someone else'")

        migrations.downgrade(url, "b7d1f3a9c2e5")
        _run(url, _audit_row("after", patients[:1], [], "NULL"))
        assert _run(url, "SELECT count(*) FROM audit_event_patients") == [(6,)]
        assert "subject" not in {
            name
            for (name,) in _run(
                url,
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'audit_event_patients'",
            )
        }
