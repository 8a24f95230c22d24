"""a patient's preferred language (a BCP 47 tag)

Revision ID: 8b4d2f0a3c75
Revises: 7a3c1e9f2b64
Create Date: 2026-12-07 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8b4d2f0a3c75"
down_revision: str | None = "7a3c1e9f2b64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("patients", sa.Column("preferred_language", sa.String(35), nullable=True))


def downgrade() -> None:
    op.drop_column("patients", "preferred_language")
