"""Clusters: groups of faces persisted as identities, their members, and the events that changed them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Written out in full rather than derived from tables.py, so that later edits to tables.py never change what
this revision creates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_timestamp = sa.DateTime(timezone=True)


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "clusters",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("created_at", _timestamp, nullable=False),
        sa.Column("updated_at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_clusters"),
        # Ids are never reused (SQLite would hand out a deleted maximum again): events name clusters by id for good.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_clusters_model_id", "clusters", ["model_id"])
    op.create_table(
        "cluster_members",
        sa.Column("face_id", _big_id(), nullable=False),
        sa.Column("cluster_id", sa.Integer, nullable=False),
        sa.Column("assigned_by", sa.String(16), nullable=False),
        sa.Column("assigned_at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("face_id", name="pk_cluster_members"),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name="fk_cluster_members_face_id_faces", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name="fk_cluster_members_cluster_id_clusters", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_cluster_members_cluster_id", "cluster_members", ["cluster_id"])
    op.create_table(
        "cluster_events",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("cluster_id", sa.Integer, nullable=False),
        sa.Column("other_cluster_id", sa.Integer),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("face_ids", sa.JSON, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cluster_events"),
    )
    op.create_index("ix_cluster_events_cluster_id", "cluster_events", ["cluster_id"])
    op.create_index("ix_cluster_events_other_cluster_id", "cluster_events", ["other_cluster_id"])


def downgrade() -> None:
    for table in ("cluster_events", "cluster_members", "clusters"):
        op.drop_table(table)
