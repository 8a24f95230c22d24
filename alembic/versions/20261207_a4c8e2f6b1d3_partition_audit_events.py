"""the audit trail in monthly partitions, and the patients each audit row names

audit_events becomes a table partitioned by month of occurred_at (UTC), every row and id kept;
audit_event_patients (one row per patient an audit row names, partitioned the same way) finds
a patient's audit rows by its key, so the GIN index on patient_ids goes. Both tables and each of
their partitions refuse UPDATE, DELETE and TRUNCATE. The months after this one get their
partitions from app/data/audit_partitions.py (`medrec migrate`, server start,
`medrec audit-partitions`).

Revision ID: a4c8e2f6b1d3
Revises: 9c5e3a1b4d86
Create Date: 2026-12-07 18:00:00
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a4c8e2f6b1d3"
down_revision: str | None = "9c5e3a1b4d86"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OUTCOME = postgresql.ENUM("ok", "denied", "error", name="audit_outcome", create_type=False)
_COLUMNS = (
    "id, occurred_at, tenant_id, subject, roles, operation_name, operation_type, query_sha256, "
    "patient_ids, record_ids, attachment_ids, outcome, client_address, request_id"
)


def _audit_event_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column(
            "roles",
            postgresql.ARRAY(sa.String(length=16)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("operation_name", sa.String(length=200), nullable=True),
        sa.Column("operation_type", sa.String(length=16), nullable=False),
        sa.Column("query_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "patient_ids",
            postgresql.ARRAY(sa.UUID()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "record_ids",
            postgresql.ARRAY(sa.UUID()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "attachment_ids",
            postgresql.ARRAY(sa.UUID()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("outcome", _OUTCOME, nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
    ]


def _append_only(table: str) -> None:
    # Statement triggers, because TRUNCATE has no other kind; they are not inherited, so every
    # partition gets its own (and keeps it once detached, so an archived month stays as it was).
    op.execute(
        f"CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )


def _month_partition(table: str, month: date) -> None:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    name = f"{table}_{month:%Y_%m}"
    op.execute(
        f"CREATE TABLE {name} PARTITION OF {table} "
        f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
        f"TO ('{following.isoformat()} 00:00:00+00')"
    )
    _append_only(name)


def upgrade() -> None:
    bind = op.get_bind()
    op.execute("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE audit_events RENAME TO audit_events_unpartitioned")
    op.execute(
        "ALTER TABLE audit_events_unpartitioned "
        "RENAME CONSTRAINT pk_audit_events TO pk_audit_events_unpartitioned"
    )
    op.drop_index("ix_audit_events_tenant_occurred", table_name="audit_events_unpartitioned")
    op.drop_index("ix_audit_events_patient_ids", table_name="audit_events_unpartitioned")

    op.create_table(
        "audit_events",
        *_audit_event_columns(),
        sa.PrimaryKeyConstraint("id", "occurred_at", name=op.f("pk_audit_events")),
        postgresql_partition_by="RANGE (occurred_at)",
    )
    op.create_index(
        "ix_audit_events_tenant_occurred",
        "audit_events",
        ["tenant_id", sa.literal_column("occurred_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_table(
        "audit_event_patients",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "patient_id",
            "occurred_at",
            "audit_event_id",
            name=op.f("pk_audit_event_patients"),
        ),
        postgresql_partition_by="RANGE (occurred_at)",
    )
    # One function for both tables and every partition: the message names the table refused.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    months = bind.execute(
        sa.text(
            "SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date "
            "FROM audit_events_unpartitioned ORDER BY 1"
        )
    ).scalars()
    for table in ("audit_events", "audit_event_patients"):
        _append_only(table)
        # A row of a month without a partition goes here rather than failing its operation;
        # app/data/audit_partitions.py moves such rows into a partition of their months.
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        _append_only(f"{table}_default")
    for month in months:
        for table in ("audit_events", "audit_event_patients"):
            _month_partition(table, month)

    op.execute(
        f"INSERT INTO audit_events ({_COLUMNS}) OVERRIDING SYSTEM VALUE "
        f"SELECT {_COLUMNS} FROM audit_events_unpartitioned"
    )
    op.execute(
        "INSERT INTO audit_event_patients (tenant_id, patient_id, occurred_at, audit_event_id) "
        "SELECT tenant_id, unnest(patient_ids), occurred_at, id FROM audit_events_unpartitioned "
        "WHERE tenant_id IS NOT NULL ON CONFLICT DO NOTHING"
    )
    # Every statement that adds audit rows (the previous release's during a rolling deploy too)
    # adds the rows of the patients they name. A statement trigger: the audit writer inserts a
    # whole flush in one statement, and this runs once for it. Rows inserted straight into a
    # partition, not through audit_events, are not seen. A lookup is always within a tenant:
    # rows of callers without one are found by none, and are left out.
    op.execute(
        """
        CREATE FUNCTION audit_event_patients_of_rows() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO audit_event_patients
                (tenant_id, patient_id, occurred_at, audit_event_id)
            SELECT added.tenant_id, patient_id, added.occurred_at, added.id
            FROM added, unnest(added.patient_ids) AS patient_id
            WHERE added.tenant_id IS NOT NULL;
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_event_patients AFTER INSERT ON audit_events "
        "REFERENCING NEW TABLE AS added "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_patients_of_rows()"
    )
    # New rows go on from the old table's last id.
    op.execute(
        "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), max(id)) "
        "FROM audit_events_unpartitioned HAVING max(id) IS NOT NULL"
    )
    op.drop_table("audit_events_unpartitioned")


def downgrade() -> None:
    """Back to one plain table holding the rows of every attached partition. Partitions detached
    by retention (archived_audit_events_*, archived_audit_event_patients_*) are left as they are."""
    op.execute("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE audit_events RENAME TO audit_events_partitioned")
    op.execute(
        "ALTER TABLE audit_events_partitioned "
        "RENAME CONSTRAINT pk_audit_events TO pk_audit_events_partitioned"
    )
    op.drop_index("ix_audit_events_tenant_occurred", table_name="audit_events_partitioned")

    op.create_table(
        "audit_events",
        *_audit_event_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.execute(
        f"INSERT INTO audit_events ({_COLUMNS}) OVERRIDING SYSTEM VALUE "
        f"SELECT {_COLUMNS} FROM audit_events_partitioned"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), max(id)) "
        "FROM audit_events HAVING max(id) IS NOT NULL"
    )
    op.create_index(
        "ix_audit_events_patient_ids",
        "audit_events",
        ["patient_ids"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "ix_audit_events_tenant_occurred",
        "audit_events",
        ["tenant_id", sa.literal_column("occurred_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.drop_table("audit_events_partitioned")
    op.drop_table("audit_event_patients")
    op.execute("DROP FUNCTION audit_event_patients_of_rows()")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )
