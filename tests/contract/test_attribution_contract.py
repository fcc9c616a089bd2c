"""Labels belong to faces (issue 10), on SQLite and on PostgreSQL: a photo's label names its subject face only, the
photo records how that face was chosen, the label views and erasure by label count only the faces carrying it, and
revision 0007 re-attributes a catalog built before it by the same rule."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from catalog_samples import MODEL, make_asset, make_face

from facetrace.catalog import SqlCatalog, blobs, open_catalog
from facetrace.catalog.schema import alembic_config
from facetrace.catalog.tables import metadata
from facetrace.core.errors import CatalogError
from facetrace.core.types import AnalyzedFace, BoundingBox, SubjectChoice
from facetrace.core.vocabulary import PhotoRole, SubjectAttribution

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
# A 640x480 photo: a large face at the centre, a small one in a corner, and two alike side by side.
CENTRE = (240.0, 140.0, 400.0, 340.0)
CORNER = (10.0, 10.0, 70.0, 85.0)
LEFT = (100.0, 150.0, 200.0, 280.0)
RIGHT = (440.0, 150.0, 540.0, 280.0)


def face_at(seed: int, box: tuple[float, float, float, float]) -> AnalyzedFace:
    face = make_face(seed)
    return dataclasses.replace(face, detection=dataclasses.replace(face.detection, box=BoundingBox(*box)))


def _attribution(raw_engine: sa.Engine, asset_id: int) -> str | None:
    assets = metadata.tables["assets"]
    with raw_engine.connect() as connection:
        return connection.execute(sa.select(assets.c.attribution).where(assets.c.id == asset_id)).scalar_one()


def test_the_dominant_face_carries_the_label_and_the_other_is_a_bystander(
    catalog: SqlCatalog, raw_engine: sa.Engine
) -> None:
    run_id = catalog.start_run("", MODEL)
    asset_id, (subject, bystander) = catalog.add_asset_with_faces(
        run_id, make_asset(1, label="Alice"), [face_at(1, CENTRE), face_at(2, CORNER)], MODEL, width=640, height=480
    )
    records = catalog.faces_by_id([subject, bystander])
    assert (records[subject].label, records[subject].photo_role, records[subject].shown_as) == (
        "Alice",
        PhotoRole.SUBJECT,
        "Alice",
    )
    assert (records[bystander].label, records[bystander].photo_label, records[bystander].photo_role) == (
        None,
        "Alice",
        PhotoRole.BYSTANDER,
    )
    assert records[bystander].shown_as == "bystander in a photo of Alice"
    assert _attribution(raw_engine, asset_id) == "dominant"
    assert catalog.face_ids_labelled("Alice") == [subject]
    assert catalog.labels(MODEL) == ([("Alice", 1)], 1)
    # Provenance stays with every face of the photo.
    assert records[bystander].asset_uri == records[subject].asset_uri == "/photos/1.jpg"


def test_two_faces_alike_leave_the_photo_ambiguous(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    run_id = catalog.start_run("", MODEL)
    asset_id, face_ids = catalog.add_asset_with_faces(
        run_id, make_asset(1, label="Bob"), [face_at(1, LEFT), face_at(2, RIGHT)], MODEL, width=640, height=480
    )
    records = catalog.faces_by_id(face_ids)
    assert [records[f].label for f in face_ids] == [None, None]
    assert [records[f].photo_role for f in face_ids] == [PhotoRole.UNATTRIBUTED] * 2
    assert records[face_ids[0]].shown_as == "unattributed face in a photo of Bob (subject ambiguous)"
    assert _attribution(raw_engine, asset_id) == "ambiguous"
    assert catalog.face_ids_labelled("Bob") == [] and catalog.labels(MODEL) == ([], 0)
    assert catalog.stats().unattributed_labels == 1


def test_the_subject_the_caller_chose_is_kept_and_checked(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    run_id = catalog.start_run("", MODEL)
    faces = [face_at(1, CENTRE), face_at(2, CORNER)]
    chosen = SubjectChoice(1, SubjectAttribution.FACE_INDEX)
    asset_id, (centre, corner) = catalog.add_asset_with_faces(
        run_id, make_asset(1, label="Cleo"), faces, MODEL, width=640, height=480, subject=chosen
    )
    assert catalog.face_ids_labelled("Cleo") == [corner]
    assert catalog.faces_by_id([centre])[centre].photo_role is PhotoRole.BYSTANDER
    assert _attribution(raw_engine, asset_id) == "face_index"
    nobody = SubjectChoice(None, SubjectAttribution.NOT_FOUND)
    other_id, others = catalog.add_asset_with_faces(run_id, make_asset(2, label="Dan"), faces, MODEL, subject=nobody)
    assert catalog.face_ids_labelled("Dan") == [] and _attribution(raw_engine, other_id) == "not_found"
    assert {r.photo_role for r in catalog.faces_by_id(others).values()} == {PhotoRole.UNATTRIBUTED}
    with pytest.raises(CatalogError, match=r"/photos/3.jpg: the subject is face 2, but the photo has 2"):
        catalog.add_asset_with_faces(
            run_id, make_asset(3, label="Eve"), faces, MODEL, subject=SubjectChoice(2, SubjectAttribution.FACE_INDEX)
        )
    assert catalog.known_sha256([make_asset(3).sha256]) == set()
    # An unlabelled photo has no subject, whatever the caller says: nothing to attribute.
    plain_id, plain = catalog.add_asset_with_faces(run_id, make_asset(4), faces, MODEL, subject=chosen)
    assert _attribution(raw_engine, plain_id) is None
    assert {(r.label, r.photo_role) for r in catalog.faces_by_id(plain).values()} == {(None, None)}
    faceless_id, _ = catalog.add_asset_with_faces(run_id, make_asset(5, label="Fay"), [], MODEL)
    assert _attribution(raw_engine, faceless_id) == "no_face"
    assert catalog.stats().unattributed_labels == 2  # Dan's photo and Fay's


def test_erasing_a_label_takes_its_faces_and_leaves_the_bystanders(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    _, (alice, bystander) = catalog.add_asset_with_faces(
        run_id, make_asset(1, label="Alice"), [face_at(1, CENTRE), face_at(2, CORNER)], MODEL, width=640, height=480
    )
    _, (alone,) = catalog.add_asset_with_faces(run_id, make_asset(2, label="Alice"), [face_at(3, CENTRE)], MODEL)
    wanted = catalog.face_ids_labelled("Alice")
    assert wanted == [alice, alone]
    deleted = catalog.delete_faces(wanted)
    assert deleted.face_ids == (alice, alone) and deleted.asset_uris == ("/photos/2.jpg",)
    left = catalog.faces_by_id([bystander])[bystander]
    assert (left.label, left.photo_label, left.photo_role) == (None, "Alice", PhotoRole.BYSTANDER)
    assert catalog.face_ids_labelled("Alice") == [] and catalog.count_faces() == 1


# Revision 0007 on a catalog built before it


def _face_row(
    face_id: int, asset_id: int, box: tuple[float, float, float, float], person: int | None
) -> dict[str, object]:
    face = make_face(face_id)
    x1, y1, x2, y2 = box
    return {
        "id": face_id,
        "asset_id": asset_id,
        "x1": x1,
        "y1": y1,
        "x2": x2,
        "y2": y2,
        "landmarks": blobs.encode_floats(face.detection.landmarks),
        "detection_score": 0.9,
        "quality_score": 0.8,
        "quality_flags": "",
        "model_id": MODEL,
        "embedding": blobs.encode_floats(face.embedding.vector),
        "dim": int(face.embedding.vector.shape[0]),
        "person_id": person,
    }


def _build_at_0006(raw_engine: sa.Engine) -> None:
    """A catalog at revision 0006 holding what the code of that revision stored: labels on assets, and a person only
    on the face of a single-face photo (plus one assigned by hand)."""
    if raw_engine.dialect.name == "sqlite" and raw_engine.url.database:
        Path(raw_engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    t = metadata.tables
    with raw_engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0006")
        connection.execute(
            sa.insert(t["ingest_runs"]).values(id=1, started_at=NOW, status="finished", description="", model_id=MODEL)
        )
        # No ids given: PostgreSQL's sequence must know them when the migration creates the next person.
        solo, zed = (
            connection.execute(
                sa.insert(t["people"]).values(name=name, created_at=NOW).returning(t["people"].c.id)
            ).scalar_one()
            for name in ("Solo", "Zed")
        )
        assets = [
            (1, "Solo", 640, 480),  # one face, its person assigned at ingest
            (2, "Dom", 640, 480),  # a dominant face and a bystander
            (3, "Amb", 640, 480),  # two faces alike
            (4, "Nobody", 640, 480),  # no face
            (5, None, 640, 480),  # unlabelled
            (6, "Dom", None, None),  # no size stored: area alone decides
            (7, "Kept", 640, 480),  # the dominant face was assigned to Zed by hand
            (8, "  ", 640, 480),  # a blank label is no label
        ]
        connection.execute(
            sa.insert(t["assets"]),
            [
                {
                    "id": i,
                    "sha256": f"{i:064x}",
                    "uri": f"/photos/{i}.jpg",
                    "ingested_at": NOW,
                    "run_id": 1,
                    "label": label,
                    "width": w,
                    "height": h,
                }
                for i, label, w, h in assets
            ],
        )
        faces = [
            _face_row(10, 1, CENTRE, solo),
            _face_row(20, 2, CORNER, None),
            _face_row(21, 2, CENTRE, None),
            _face_row(30, 3, LEFT, None),
            _face_row(31, 3, RIGHT, None),
            _face_row(50, 5, CENTRE, None),
            _face_row(51, 5, CORNER, None),
            _face_row(60, 6, (0.0, 0.0, 300.0, 300.0), None),
            _face_row(61, 6, (400.0, 0.0, 500.0, 100.0), None),
            _face_row(70, 7, CENTRE, zed),
            _face_row(71, 7, CORNER, None),
            _face_row(80, 8, CENTRE, None),
            _face_row(81, 8, CORNER, None),
        ]
        connection.execute(sa.insert(t["faces"]), faces)


def test_0007_reattributes_a_catalog_built_at_0006(catalog_uri: str, raw_engine: sa.Engine) -> None:
    _build_at_0006(raw_engine)
    with open_catalog(catalog_uri) as upgraded:
        assets = metadata.tables["assets"]
        with raw_engine.connect() as connection:
            attribution = dict(connection.execute(sa.select(assets.c.id, assets.c.attribution)).all())
        assert attribution == {
            1: "only_face",
            2: "dominant",
            3: "ambiguous",
            4: "no_face",
            5: None,
            6: "dominant",
            7: "dominant",
            8: None,
        }
        assert upgraded.face_ids_labelled("Solo") == [10]
        assert upgraded.face_ids_labelled("Dom") == [21, 60]  # one person for both photos
        assert upgraded.face_ids_labelled("Amb") == []
        assert upgraded.face_ids_labelled("Kept") == [] and upgraded.face_ids_labelled("Zed") == [70]
        records = upgraded.faces_by_id([20, 21, 30, 31, 50, 61, 70, 71, 80])
        roles = {face_id: record.photo_role for face_id, record in records.items()}
        assert roles == {
            20: PhotoRole.BYSTANDER,
            21: PhotoRole.SUBJECT,
            30: PhotoRole.UNATTRIBUTED,
            31: PhotoRole.UNATTRIBUTED,
            50: None,
            61: PhotoRole.BYSTANDER,
            70: PhotoRole.BYSTANDER,  # Zed, by hand, in a photo labelled Kept
            71: PhotoRole.BYSTANDER,
            80: None,
        }
        assert records[20].shown_as == "bystander in a photo of Dom" and records[70].shown_as == "Zed"
        assert upgraded.labels(MODEL) == ([("Dom", 2), ("Solo", 1), ("Zed", 1)], 3)
        assert upgraded.stats().unattributed_labels == 2  # Amb's photo and Nobody's
        assert upgraded.count_faces() == 13


def test_0007_downgrades_without_losing_a_face(catalog_uri: str, catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    run_id = catalog.start_run("", MODEL)
    _, face_ids = catalog.add_asset_with_faces(
        run_id, make_asset(1, label="Alice"), [face_at(1, CENTRE), face_at(2, CORNER)], MODEL, width=640, height=480
    )
    catalog.close()
    with raw_engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # As the catalog's own connections have it: a rebuilt assets table would cascade to its faces.
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
        with connection.begin():
            command.downgrade(alembic_config(connection), "0006")
        columns = {column["name"] for column in sa.inspect(connection).get_columns("assets")}
        faces = connection.execute(sa.text("SELECT count(*) FROM faces")).scalar_one()
    assert "attribution" not in columns and faces == 2
    with open_catalog(catalog_uri) as again:
        assert again.face_ids_labelled("Alice") == face_ids[:1]
        assert again.faces_by_id(face_ids)[face_ids[1]].photo_role is PhotoRole.BYSTANDER
