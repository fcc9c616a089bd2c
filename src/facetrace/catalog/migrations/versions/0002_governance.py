"""Governance: users, API keys, cases, searches and their hits, reviews, the audit chain, suppressions, receipts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Written out in full rather than derived from tables.py, so that later edits to tables.py never change what
this revision creates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_timestamp = sa.DateTime(timezone=True)


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", _timestamp, nullable=False),
        sa.Column("revoked_at", _timestamp),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_keys_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_api_keys_key_sha256", "api_keys", ["key_sha256"], unique=True)
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("legal_basis", sa.Text, nullable=False),
        sa.Column("requires_independent_review", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", _timestamp, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
    )
    op.create_table(
        "searches",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("probe_sha256", sa.String(64), nullable=False),
        sa.Column("probe_name", sa.Text, nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("probe_embedding", sa.LargeBinary),
        sa.Column("dim", sa.Integer),
        sa.Column("at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_searches"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_searches_case_id_cases", ondelete="CASCADE"),
    )
    op.create_index("ix_searches_case_id", "searches", ["case_id"])
    op.create_index("ix_searches_probe_sha256", "searches", ["probe_sha256"])
    op.create_table(
        "search_hits",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("search_id", _big_id(), nullable=False),
        sa.Column("probe_face_index", sa.Integer),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("face_id", sa.BigInteger, nullable=False),
        sa.Column("similarity", sa.Float, nullable=False),
        sa.Column("false_match_rate", sa.Float),
        sa.Column("gallery_false_match_probability", sa.Float),
        sa.Column("gallery_size", sa.Integer, nullable=False),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_search_hits"),
        sa.ForeignKeyConstraint(
            ["search_id"], ["searches.id"], name="fk_search_hits_search_id_searches", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_search_hits_search_id", "search_hits", ["search_id"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("search_id", _big_id(), nullable=False),
        sa.Column("face_id", sa.BigInteger, nullable=False),
        sa.Column("reviewer", sa.String(255), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.ForeignKeyConstraint(
            ["search_id"], ["searches.id"], name="fk_reviews_search_id_searches", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_reviews_search_id", "reviews", ["search_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("at", _timestamp, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("receipt_id", sa.String(64), nullable=False),
        sa.Column("created_at", _timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
    )
    op.create_index("ix_suppressions_model_id", "suppressions", ["model_id"])
    op.create_table(
        "erasure_receipts",
        sa.Column("receipt_id", sa.String(64), nullable=False),
        sa.Column("at", _timestamp, nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("audit_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", name="pk_erasure_receipts"),
    )


def downgrade() -> None:
    for table in (
        "erasure_receipts",
        "suppressions",
        "audit_log",
        "reviews",
        "search_hits",
        "searches",
        "cases",
        "api_keys",
        "users",
    ):
        op.drop_table(table)
