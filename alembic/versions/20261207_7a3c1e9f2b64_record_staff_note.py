"""a record's staff note (read by admins and providers only)

Revision ID: 7a3c1e9f2b64
Revises: 5e7d2c41a9b0
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7a3c1e9f2b64"
down_revision: str | None = "5e7d2c41a9b0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("medical_records", sa.Column("staff_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("medical_records", "staff_note")
