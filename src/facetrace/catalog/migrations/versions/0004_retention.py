"""Retention: when each asset (and so its faces) must be purged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

assets.retain_until is set at ingest from the item's retain_days (a manifest column, `ingest --retain-days`, or the
retention_days setting); NULL keeps the asset until it is erased. Indexed: the purge job selects by it.
Written out in full rather than derived from tables.py, as the earlier revisions are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a column with a later index through plain ALTER in every version.
    with op.batch_alter_table("assets") as batch:
        batch.add_column(sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_assets_retain_until", "assets", ["retain_until"])


def downgrade() -> None:
    op.drop_index("ix_assets_retain_until", table_name="assets")
    with op.batch_alter_table("assets") as batch:
        batch.drop_column("retain_until")
