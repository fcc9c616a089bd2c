"""Access by case: a case's members, added and removed by an admin, work in it besides its owner.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

A case's owner is its creator (cases.created_by, already recorded). case_members holds the other users an admin
added; investigators and reviewers who are neither get 404 for the case and everything in it.

Existing cases: every user who already worked in a case (ran one of its searches or reviewed one of its candidates)
and is not its owner becomes a member (added_by "migration:0009"), so nobody loses the cases they worked on; other
reviewers and investigators lose access until an admin adds them. The table is created with CREATE TABLE, no rebuild
of `cases` (which searches and reviews cascade from).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ADDED_BY = "migration:0009"


def upgrade() -> None:
    op.create_table(
        "case_members",
        sa.Column(
            "case_id",
            sa.Integer,
            sa.ForeignKey("cases.id", name="fk_case_members_case_id_cases", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_name", sa.String(255), primary_key=True),
        sa.Column("added_by", sa.String(255), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_case_members_user_name", "case_members", ["user_name"])
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT DISTINCT w.case_id, w.user_name FROM ("
            "SELECT case_id, user_name FROM searches "
            "UNION SELECT s.case_id, r.reviewer FROM reviews r JOIN searches s ON s.id = r.search_id"
            ") w JOIN cases c ON c.id = w.case_id WHERE w.user_name <> c.created_by ORDER BY w.case_id, w.user_name"
        )
    ).all()
    if rows:
        now = datetime.now(UTC)
        if connection.dialect.name == "sqlite":
            now = now.replace(tzinfo=None)  # SQLite keeps UTC text without an offset, as the catalog's UtcDateTime does
        table = sa.table(
            "case_members",
            sa.column("case_id", sa.Integer),
            sa.column("user_name", sa.String),
            sa.column("added_by", sa.String),
            sa.column("added_at", sa.DateTime(timezone=True)),
        )
        op.bulk_insert(
            table,
            [{"case_id": r[0], "user_name": r[1], "added_by": ADDED_BY, "added_at": now} for r in rows],
        )


def downgrade() -> None:
    op.drop_index("ix_case_members_user_name", table_name="case_members")
    op.drop_table("case_members")
