"""Sessions end on the server: a user's web sessions issued before sessions_valid_after are refused.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

The web UI's session is a signed cookie; signing out used to clear only the browser's copy, so a copied cookie kept
working for 12 hours, through a password change or a deactivation. users.sessions_valid_after is set at a password
change or deactivation (every session of the user ends); ended_sessions holds the sessions signed out one by one
(the sha256 of each one's token), until they would have expired anyway. Every request checks both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable): SQLite needs no table rebuild, which with foreign keys on could cascade.
    op.add_column("users", sa.Column("sessions_valid_after", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "ended_sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ended_sessions_ended_at", "ended_sessions", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_ended_sessions_ended_at", table_name="ended_sessions")
    op.drop_table("ended_sessions")
    op.drop_column("users", "sessions_valid_after")
