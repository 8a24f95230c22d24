"""what a patient's access log shows, in audit_event_patients

The trigger that writes audit_event_patients copies the action, the caller's subject and roles,
the patient's own records and the break-glass grant of each audit row, so a page of the access log is one
index range of that table and never reaches into audit_events' partitions. Existing rows get
theirs from their audit rows.

Revision ID: c6f2a8d4e1b9
Revises: b7d1f3a9c2e5
Create Date: 2026-12-07 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c6f2a8d4e1b9"
down_revision: str | None = "b7d1f3a9c2e5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACCESS_ACTION = postgresql.ENUM(name="access_action", create_type=False)
_COPIED = ("action", "subject", "roles", "break_glass_grant_id")


def _patients_records(audit_row: str, patient_id: str) -> str:
    """Of the records an audit row names, the patient's own: a patient's access log shows no
    other patient's, and a row naming many patients does not carry all their records in each
    patient's row. A record never changes patient, so this is what a read would find too."""
    return (
        f"CASE WHEN cardinality({audit_row}.record_ids) = 0 THEN {audit_row}.record_ids "
        "ELSE ARRAY(SELECT record.id FROM medical_records AS record "
        f"WHERE record.tenant_id = {audit_row}.tenant_id AND record.patient_id = {patient_id} "
        f"AND record.id = ANY ({audit_row}.record_ids) ORDER BY record.id) END"
    )


def _trigger_function(copied: Sequence[str], with_records: bool) -> str:
    columns = "".join(f", {name}" for name in copied)
    values = "".join(f", added.{name}" for name in copied)
    if with_records:
        columns += ", record_ids"
        values += ", " + _patients_records("added", "named.patient_id")
    return f"""
        CREATE OR REPLACE FUNCTION audit_event_patients_of_rows() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO audit_event_patients
                (tenant_id, patient_id, occurred_at, audit_event_id{columns})
            SELECT added.tenant_id, named.patient_id, added.occurred_at, added.id{values}
            FROM added, unnest(added.patient_ids) AS named(patient_id)
            WHERE added.tenant_id IS NOT NULL;
            RETURN NULL;
        END;
        $$
        """


def upgrade() -> None:
    op.add_column("audit_event_patients", sa.Column("action", _ACCESS_ACTION, nullable=True))
    op.add_column("audit_event_patients", sa.Column("subject", sa.String(128), nullable=True))
    op.add_column(
        "audit_event_patients", sa.Column("roles", postgresql.ARRAY(sa.String(16)), nullable=True)
    )
    op.add_column(
        "audit_event_patients",
        sa.Column("record_ids", postgresql.ARRAY(sa.UUID()), nullable=True),
    )
    op.add_column(
        "audit_event_patients", sa.Column("break_glass_grant_id", sa.UUID(), nullable=True)
    )
    # Rows written from here on carry their columns; the existing ones are filled from their audit
    # rows, the one change ever made to them, by the owner, inside this migration. An UPDATE
    # through the partitioned table fires its own statement trigger only.
    op.execute("LOCK TABLE audit_events IN SHARE MODE")
    op.execute(_trigger_function(_COPIED, with_records=True))
    op.execute("ALTER TABLE audit_event_patients DISABLE TRIGGER audit_append_only")
    # Both tables are partitioned by month alike: joined month by month, each month's audit rows
    # fit in memory, where one join of the whole tables spills to disk.
    op.execute("SET LOCAL enable_partitionwise_join = on")
    op.execute("SET LOCAL work_mem = '256MB'")
    op.execute(
        "UPDATE audit_event_patients AS patient_row SET "
        + ", ".join(f"{name} = audit_row.{name}" for name in _COPIED)
        + ", record_ids = "
        + _patients_records("audit_row", "patient_row.patient_id")
        + " FROM audit_events AS audit_row"
        " WHERE audit_row.id = patient_row.audit_event_id"
        " AND audit_row.occurred_at = patient_row.occurred_at"
    )
    op.execute("ALTER TABLE audit_event_patients ENABLE TRIGGER audit_append_only")
    for name in ("action", "roles", "record_ids"):
        op.alter_column("audit_event_patients", name, nullable=False)


def downgrade() -> None:
    op.execute(_trigger_function((), with_records=False))
    for name in ("record_ids", *reversed(_COPIED)):
        op.drop_column("audit_event_patients", name)
