"""a Cognito subject is linked to at most one provider or patient row in the installation

Revision ID: 5d2f8e61a0c3
Revises: c4e1a9d07b21
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d2f8e61a0c3"
down_revision: str | None = "c4e1a9d07b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LINKED_SUBJECTS = """
    SELECT cognito_sub FROM providers WHERE cognito_sub IS NOT NULL
    UNION ALL
    SELECT cognito_sub FROM patients WHERE cognito_sub IS NOT NULL
"""

# One function for both tables and all three row events. subject_links' primary key does the
# refusing: a second link of a subject (or a concurrent one, once the first commits) violates it.
_FOLLOW = """
CREATE FUNCTION subject_links_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.cognito_sub IS NOT NULL THEN
        DELETE FROM subject_links WHERE subject = OLD.cognito_sub;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.cognito_sub IS NOT NULL THEN
        INSERT INTO subject_links (subject) VALUES (NEW.cognito_sub);
    END IF;
    RETURN NULL;
END;
$$
"""

# TRUNCATE fires no row triggers: drop the links no row holds any more.
_AFTER_TRUNCATE = f"""
CREATE FUNCTION subject_links_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM subject_links WHERE subject NOT IN ({_LINKED_SUBJECTS});
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    # No link may change between the check and the triggers taking over.
    op.execute("LOCK TABLE providers, patients IN SHARE ROW EXCLUSIVE MODE")
    twice = op.get_bind().scalar(
        sa.text(
            f"SELECT count(*) FROM (SELECT cognito_sub FROM ({_LINKED_SUBJECTS}) AS linked "
            "GROUP BY cognito_sub HAVING count(*) > 1) AS shared"
        )
    )
    if twice:
        raise RuntimeError(
            f"{twice} Cognito subject(s) are linked to more than one provider or patient row "
            "(cognito_sub, across both tables and all tenants). A subject may be linked once: "
            "clear the extra links, then migrate again. Nothing was changed."
        )
    op.create_table(
        "subject_links",
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_subject_links")),
    )
    op.execute(f"INSERT INTO subject_links (subject) {_LINKED_SUBJECTS}")
    op.execute(_FOLLOW)
    op.execute(_AFTER_TRUNCATE)
    for table in ("providers", "patients"):
        op.execute(
            f"CREATE TRIGGER {table}_link_subject AFTER INSERT ON {table} FOR EACH ROW "
            "WHEN (NEW.cognito_sub IS NOT NULL) EXECUTE FUNCTION subject_links_follow()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_relink_subject AFTER UPDATE OF cognito_sub ON {table} "
            "FOR EACH ROW WHEN (OLD.cognito_sub IS DISTINCT FROM NEW.cognito_sub) "
            "EXECUTE FUNCTION subject_links_follow()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_unlink_subject AFTER DELETE ON {table} FOR EACH ROW "
            "WHEN (OLD.cognito_sub IS NOT NULL) EXECUTE FUNCTION subject_links_follow()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_truncate_subjects AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION subject_links_after_truncate()"
        )
        # subject_links' key is the rule now; the per-tenant indexes said less of it.
        op.drop_index(
            f"uq_{table}_tenant_cognito_sub",
            table_name=table,
            postgresql_where=sa.text("cognito_sub IS NOT NULL"),
        )


def downgrade() -> None:
    for table in ("providers", "patients"):
        op.create_index(
            f"uq_{table}_tenant_cognito_sub",
            table,
            ["tenant_id", "cognito_sub"],
            unique=True,
            postgresql_where=sa.text("cognito_sub IS NOT NULL"),
        )
        for trigger in ("link_subject", "relink_subject", "unlink_subject", "truncate_subjects"):
            op.execute(f"DROP TRIGGER {table}_{trigger} ON {table}")
    op.execute("DROP FUNCTION subject_links_after_truncate()")
    op.execute("DROP FUNCTION subject_links_follow()")
    op.drop_table("subject_links")
