"""break-glass grants; each audit row's access action and break-glass grant

Revision ID: b7d1f3a9c2e5
Revises: a4c8e2f6b1d3
Create Date: 2026-12-07 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b7d1f3a9c2e5"
down_revision: str | None = "a4c8e2f6b1d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACCESS_ACTION = postgresql.ENUM(
    "VIEWED", "CHANGED", "DOWNLOADED_FILE", "BREAK_GLASS", name="access_action", create_type=False
)


def upgrade() -> None:
    op.create_table(
        "break_glass_grants",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("provider_id", sa.UUID(), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column(
            "granted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "expires_at > granted_at", name=op.f("ck_break_glass_grants_expires_after_granted")
        ),
        sa.CheckConstraint(
            "(revoked_at IS NULL) = (revoked_by IS NULL) AND "
            "(revoked_at IS NULL OR revoked_at >= granted_at)",
            name=op.f("ck_break_glass_grants_revoked_with_revoker"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"],
            ["patients.tenant_id", "patients.id"],
            name=op.f("fk_break_glass_grants_tenant_id_patient_id_patients"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "provider_id"],
            ["providers.tenant_id", "providers.id"],
            name=op.f("fk_break_glass_grants_tenant_id_provider_id_providers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_grants")),
        sa.UniqueConstraint("sequence", name=op.f("uq_break_glass_grants_sequence")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_break_glass_grants_tenant_id_id")),
    )
    op.create_index(
        "ix_break_glass_grants_tenant_subject_patient",
        "break_glass_grants",
        ["tenant_id", "subject", "patient_id"],
    )
    op.create_index(
        "ix_break_glass_grants_tenant_granted",
        "break_glass_grants",
        ["tenant_id", sa.literal_column("granted_at DESC"), sa.literal_column("id DESC")],
    )
    op.create_index(
        "ix_break_glass_grants_tenant_patient_granted",
        "break_glass_grants",
        [
            "tenant_id",
            "patient_id",
            sa.literal_column("granted_at DESC"),
            sa.literal_column("id DESC"),
        ],
    )
    op.create_index(
        "ix_break_glass_grants_tenant_sequence", "break_glass_grants", ["tenant_id", "sequence"]
    )

    _ACCESS_ACTION.create(op.get_bind())
    op.add_column("audit_events", sa.Column("action", _ACCESS_ACTION, nullable=True))
    op.add_column("audit_events", sa.Column("break_glass_grant_id", sa.UUID(), nullable=True))
    # The existing rows' action, from what they already say (no grant existed before this
    # revision). The only change to audit rows ever made, by the owner, inside this migration.
    # An UPDATE through the partitioned table fires its own statement trigger only.
    op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_append_only")
    op.execute(
        "UPDATE audit_events SET action = CASE"
        " WHEN operation_type = 'mutation' THEN 'CHANGED'::access_action"
        " WHEN cardinality(attachment_ids) > 0 THEN 'DOWNLOADED_FILE'::access_action"
        " ELSE 'VIEWED'::access_action END"
    )
    op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_append_only")
    op.alter_column("audit_events", "action", nullable=False)


def downgrade() -> None:
    op.drop_column("audit_events", "break_glass_grant_id")
    op.drop_column("audit_events", "action")
    _ACCESS_ACTION.drop(op.get_bind())
    op.drop_index("ix_break_glass_grants_tenant_sequence", table_name="break_glass_grants")
    op.drop_index("ix_break_glass_grants_tenant_patient_granted", table_name="break_glass_grants")
    op.drop_index("ix_break_glass_grants_tenant_granted", table_name="break_glass_grants")
    op.drop_index("ix_break_glass_grants_tenant_subject_patient", table_name="break_glass_grants")
    op.drop_table("break_glass_grants")
