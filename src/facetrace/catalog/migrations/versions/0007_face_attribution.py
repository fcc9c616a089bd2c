"""Labels belong to faces: a photo's label names its subject face only, and the photo records how that was decided.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

assets gains attribution (String(16), NULL for an unlabelled photo): how the face the photo's label names was
decided: only_face, dominant, face_index, face_box, or, when the label goes to no face, ambiguous, not_found or
no_face. Before this revision a label was shown on every face of its photo and only a single-face photo's face got
the person; from now on only the subject face carries the label (as its person) and the other faces are bystanders.

Existing data is re-attributed by the rule ingest applies (core/subject.py as of this revision, written out below so
that later tuning of that module never changes what this revision did): every labelled photo with several stored
faces gets the face whose area times centrality is at least DOMINANCE times every other face's, using the stored
boxes and the photo's stored width and height (no size stored: area alone). That face is assigned the label's person
(created if missing) unless a person was assigned to it already; a photo where no face dominates is marked
ambiguous and none of its faces gets the person. A photo with one face is marked only_face (ingest assigned its
person already), one with none no_face. Persons assigned to other faces (by assign_person) are left as they are.
The downgrade drops the column; the persons it assigned stay (the old code shows them as before).
Written out in full rather than derived from tables.py, as the earlier revisions are.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# core/subject.py's constants at this revision.
DOMINANCE = 2.0
MIN_CENTRALITY = 0.25
_PAGE = 500  # labelled photos re-attributed per round trip

_assets = sa.table(
    "assets",
    sa.column("id", sa.Integer),
    sa.column("label", sa.Text),
    sa.column("width", sa.Integer),
    sa.column("height", sa.Integer),
    sa.column("attribution", sa.String),
)
_faces = sa.table(
    "faces",
    sa.column("id", sa.Integer),
    sa.column("asset_id", sa.Integer),
    sa.column("x1", sa.Float),
    sa.column("y1", sa.Float),
    sa.column("x2", sa.Float),
    sa.column("y2", sa.Float),
    sa.column("person_id", sa.Integer),
)
_people = sa.table(
    "people",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # A plain ADD COLUMN on both backends (a batch rebuild of assets on SQLite would cascade to its faces).
    op.add_column("assets", sa.Column("attribution", sa.String(16), nullable=True))
    _reattribute(op.get_bind())


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later): rebuilding assets in batch mode would delete its faces
    # through the ON DELETE CASCADE of faces.asset_id when foreign keys are on.
    op.drop_column("assets", "attribution")


def _reattribute(connection: sa.Connection) -> None:
    last_id = 0
    people: dict[str, int] = {}
    while True:
        page = connection.execute(
            sa.select(_assets.c.id, _assets.c.label, _assets.c.width, _assets.c.height)
            .where(_assets.c.label.is_not(None), _assets.c.id > last_id)
            .order_by(_assets.c.id)
            .limit(_PAGE)
        ).all()
        if not page:
            return
        last_id = int(page[-1].id)
        labelled = {int(row.id): row for row in page if str(row.label).strip()}
        boxes: dict[int, list[Any]] = {asset_id: [] for asset_id in labelled}
        if labelled:
            for face in connection.execute(
                sa.select(
                    _faces.c.id,
                    _faces.c.asset_id,
                    _faces.c.x1,
                    _faces.c.y1,
                    _faces.c.x2,
                    _faces.c.y2,
                    _faces.c.person_id,
                )
                .where(_faces.c.asset_id.in_(list(labelled)))
                .order_by(_faces.c.asset_id, _faces.c.id)
            ):
                boxes[int(face.asset_id)].append(face)
        attributions: list[dict[str, Any]] = []
        subjects: list[dict[str, Any]] = []
        for asset_id, row in labelled.items():
            faces = boxes[asset_id]
            if not faces:
                attribution = "no_face"
            elif len(faces) == 1:
                attribution = "only_face"
            else:
                chosen = _subject(faces, float(row.width or 0), float(row.height or 0))
                attribution = "ambiguous" if chosen is None else "dominant"
                if chosen is not None and chosen.person_id is None:
                    person_id = _person(connection, people, str(row.label).strip())
                    subjects.append({"face": int(chosen.id), "who": person_id})
            attributions.append({"asset": asset_id, "how": attribution})
        if attributions:
            connection.execute(
                sa.update(_assets).where(_assets.c.id == sa.bindparam("asset")).values(attribution=sa.bindparam("how")),
                attributions,
            )
        if subjects:
            connection.execute(
                sa.update(_faces).where(_faces.c.id == sa.bindparam("face")).values(person_id=sa.bindparam("who")),
                subjects,
            )


def _subject(faces: list[Any], width: float, height: float) -> Any | None:
    """The face that dominates the photo (area x centrality, at least DOMINANCE times the next), or None."""

    def score(face: Any) -> float:
        x1, y1, x2, y2 = float(face.x1), float(face.y1), float(face.x2), float(face.y2)
        area = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        if width <= 0 or height <= 0:
            return area
        distance = math.hypot((x1 + x2) / 2 - width / 2, (y1 + y2) / 2 - height / 2)
        reach = math.hypot(width / 2, height / 2)
        return area * max(MIN_CENTRALITY, 1.0 - (1.0 - MIN_CENTRALITY) * min(distance / reach, 1.0))

    ranked = sorted(faces, key=score, reverse=True)
    return ranked[0] if score(ranked[0]) >= DOMINANCE * score(ranked[1]) else None


def _person(connection: sa.Connection, people: dict[str, int], name: str) -> int:
    """The id of the person of this name, created if missing (as ingest's get_or_create_person does)."""
    if name not in people:
        found = connection.execute(sa.select(_people.c.id).where(_people.c.name == name)).scalar_one_or_none()
        if found is None:
            now = datetime.now(UTC)
            # The catalog stores UTC instants, without an offset on SQLite (catalog/tables.py, UtcDateTime).
            created_at = now.replace(tzinfo=None) if connection.dialect.name == "sqlite" else now
            found = connection.execute(
                sa.insert(_people).values(name=name, created_at=created_at).returning(_people.c.id)
            ).scalar_one()
        people[name] = int(found)
    return people[name]
