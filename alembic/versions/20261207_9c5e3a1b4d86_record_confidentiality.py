"""a record's confidentiality (NORMAL for every existing record)

Revision ID: 9c5e3a1b4d86
Revises: 8b4d2f0a3c75
Create Date: 2026-12-07 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9c5e3a1b4d86"
down_revision: str | None = "8b4d2f0a3c75"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONFIDENTIALITY = sa.Enum("NORMAL", "RESTRICTED", name="confidentiality")


def upgrade() -> None:
    _CONFIDENTIALITY.create(op.get_bind())
    # The default fills existing rows: every record written so far was readable as NORMAL.
    op.add_column(
        "medical_records",
        sa.Column(
            "confidentiality", _CONFIDENTIALITY, server_default="NORMAL", nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_column("medical_records", "confidentiality")
    _CONFIDENTIALITY.drop(op.get_bind())
