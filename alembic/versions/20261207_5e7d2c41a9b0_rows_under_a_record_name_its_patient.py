"""rows under a record name its patient

Diagnoses, attachments and status events carry their record's patient id, kept equal to it by a
foreign key on (tenant_id, record_id, patient_id): every row of patient data says whose it is.

Revision ID: 5e7d2c41a9b0
Revises: 5d2f8e61a0c3
Create Date: 2026-12-07 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e7d2c41a9b0"
down_revision: str | None = "5d2f8e61a0c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, ON DELETE of its key to the record)
_CHILDREN = (("diagnoses", "CASCADE"), ("attachments", None), ("record_status_events", None))


def upgrade() -> None:
    op.create_unique_constraint(
        op.f("uq_medical_records_tenant_id_id_patient_id"),
        "medical_records",
        ["tenant_id", "id", "patient_id"],
    )
    for table, ondelete in _CHILDREN:
        op.add_column(table, sa.Column("patient_id", sa.UUID(), nullable=True))
        op.execute(
            f"UPDATE {table} AS child SET patient_id = record.patient_id"  # noqa: S608
            " FROM medical_records AS record"
            " WHERE record.tenant_id = child.tenant_id AND record.id = child.record_id"
        )
        op.alter_column(table, "patient_id", nullable=False)
        op.drop_constraint(
            op.f(f"fk_{table}_tenant_id_record_id_medical_records"), table, type_="foreignkey"
        )
        op.create_foreign_key(
            op.f(f"fk_{table}_tenant_id_record_id_patient_id_medical_records"),
            table,
            "medical_records",
            ["tenant_id", "record_id", "patient_id"],
            ["tenant_id", "id", "patient_id"],
            ondelete=ondelete,
        )


def downgrade() -> None:
    for table, ondelete in _CHILDREN:
        op.drop_constraint(
            op.f(f"fk_{table}_tenant_id_record_id_patient_id_medical_records"),
            table,
            type_="foreignkey",
        )
        op.create_foreign_key(
            op.f(f"fk_{table}_tenant_id_record_id_medical_records"),
            table,
            "medical_records",
            ["tenant_id", "record_id"],
            ["tenant_id", "id"],
            ondelete=ondelete,
        )
        op.drop_column(table, "patient_id")
    op.drop_constraint(
        op.f("uq_medical_records_tenant_id_id_patient_id"), "medical_records", type_="unique"
    )
