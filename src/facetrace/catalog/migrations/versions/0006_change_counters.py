"""Change counters: how a process learns that another one changed the gallery.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

change_counters holds one row per kind of change (faces_added, faces_removed, suppressions), each bumped in the
transaction that makes the change. A serving process compares them with what it last read and catches its index
(or suppression list) up with the catalog only when they moved, with one small read per request.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COUNTERS = ("faces_added", "faces_removed", "suppressions")


def upgrade() -> None:
    table = op.create_table(
        "change_counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(table, [{"name": name, "value": 0} for name in COUNTERS])


def downgrade() -> None:
    op.drop_table("change_counters")
