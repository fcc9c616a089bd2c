"""Initial catalog schema: sources, ingest runs, assets, people, faces, ingest errors.

Revision ID: 0001
Revises:
Create Date: 2024-01-01

Written out in full rather than derived from tables.py, so that later edits to tables.py never change what
this revision creates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_timestamp = sa.DateTime(timezone=True)


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("legal_basis", sa.Text),
        sa.Column("retention_days", sa.Integer),
        sa.Column("created_at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sources"),
        sa.UniqueConstraint("name", name="uq_sources_name"),
    )
    op.create_table(
        "ingest_runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("started_at", _timestamp, nullable=False),
        sa.Column("finished_at", _timestamp),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("stats", sa.JSON),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_ingest_runs"),
    )
    op.create_table(
        "assets",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("source_page", sa.Text),
        sa.Column("captured_at", _timestamp),
        sa.Column("ingested_at", _timestamp, nullable=False),
        sa.Column("source_id", sa.Integer),
        sa.Column("run_id", sa.Integer),
        sa.Column("label", sa.Text),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("extra", sa.JSON),
        sa.PrimaryKeyConstraint("id", name="pk_assets"),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name="fk_assets_source_id_sources", ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["ingest_runs.id"], name="fk_assets_run_id_ingest_runs", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_assets_sha256", "assets", ["sha256"], unique=True)
    op.create_table(
        "people",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
        sa.UniqueConstraint("name", name="uq_people_name"),
    )
    op.create_table(
        "faces",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("asset_id", _big_id(), nullable=False),
        sa.Column("x1", sa.Float, nullable=False),
        sa.Column("y1", sa.Float, nullable=False),
        sa.Column("x2", sa.Float, nullable=False),
        sa.Column("y2", sa.Float, nullable=False),
        sa.Column("landmarks", sa.LargeBinary, nullable=False),
        sa.Column("detection_score", sa.Float, nullable=False),
        sa.Column("quality_score", sa.Float, nullable=False),
        sa.Column("quality_flags", sa.Text, nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("thumbnail_path", sa.Text),
        sa.Column("person_id", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_faces"),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name="fk_faces_asset_id_assets", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name="fk_faces_person_id_people", ondelete="SET NULL"),
    )
    op.create_index("ix_faces_model_id", "faces", ["model_id"])
    op.create_index("ix_faces_asset_id", "faces", ["asset_id"])
    op.create_index("ix_faces_person_id", "faces", ["person_id"])
    op.create_table(
        "ingest_errors",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ingest_errors"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["ingest_runs.id"], name="fk_ingest_errors_run_id_ingest_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_ingest_errors_run_id", "ingest_errors", ["run_id"])


def downgrade() -> None:
    for table in ("ingest_errors", "faces", "people", "assets", "ingest_runs", "sources"):
        op.drop_table(table)
