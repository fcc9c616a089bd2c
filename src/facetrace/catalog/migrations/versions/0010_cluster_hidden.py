"""Hidden people: a saved cluster a reviewer or admin hid from the people view (clusters.hidden).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Hiding changes what the people grid shows by default, nothing else: the cluster keeps its faces, its history and
its place in searches. Existing clusters are shown (false). A plain ADD COLUMN with a server default, no rebuild.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clusters", sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("clusters", "hidden")
