"""A case hit keeps whether it is the probe's own photo or a copy of it, so that pages read later still say so.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

search_hits gains same_image (none, identical, near_duplicate: core.vocabulary.SameImage), as the search marked it
(search/service.py). Nullable, with a plain ADD COLUMN (no rebuild): rows stored before this revision have it NULL
and are read back as none, since their search did not keep the mark.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("search_hits", sa.Column("same_image", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("search_hits", "same_image")
