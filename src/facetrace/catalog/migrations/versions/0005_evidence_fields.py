"""Evidence as data: a case hit keeps the typed fields its verdict sentence is rendered from.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

search_hits gains strength (strong, moderate, weak, uncalibrated), whether the false-match rate is an upper bound,
the probe's quality score, the weak-probe and weak-candidate flags, the impostor table the rate was read from
(quality_condition: clean, one_flagged, both_flagged) and whether the pack had a table for the pair's condition. The
rate, gallery probability and gallery size were kept already; the verdict column keeps the sentence as shown.
All nullable: rows stored before this revision have them NULL, and the catalog derives what it can from their
stored sentence when it reads them (governance_store._legacy_evidence). Nothing is back-filled here.
Written out in full rather than derived from tables.py, as the earlier revisions are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("strength", sa.String(16)),
    ("false_match_rate_is_upper_bound", sa.Boolean),
    ("probe_quality", sa.Float),
    ("weak_probe", sa.Boolean),
    ("weak_candidate", sa.Boolean),
    ("quality_condition", sa.String(16)),
    ("condition_table_measured", sa.Boolean),
)


def upgrade() -> None:
    # batch mode: SQLite rebuilds the table where plain ALTER cannot; PostgreSQL gets plain ADD COLUMNs.
    with op.batch_alter_table("search_hits") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("search_hits") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
