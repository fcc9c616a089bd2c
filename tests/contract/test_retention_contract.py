"""The catalog's retention contract (revision 0004), on SQLite and on PostgreSQL: retain_until survives the
migration from an older catalog, is stored with the asset, and selects exactly the expired faces and assets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from catalog_samples import MODEL, make_asset, make_face

from facetrace.catalog import SqlCatalog, open_catalog
from facetrace.catalog.schema import alembic_config
from facetrace.catalog.tables import metadata

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_retain_until_survives_the_migration_from_0002(catalog_uri: str, raw_engine: sa.Engine) -> None:
    """A catalog made before retention existed keeps its rows (retained until erased) and gains the column."""
    if raw_engine.dialect.name == "sqlite" and raw_engine.url.database:
        Path(raw_engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    with raw_engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0002")
        connection.execute(
            sa.text("INSERT INTO assets (id, sha256, uri, ingested_at) VALUES (7, :sha, '/old/photo.jpg', :at)"),
            {"sha": "ab" * 32, "at": NOW - timedelta(days=400)},
        )
    with open_catalog(catalog_uri) as upgraded:
        run_id = upgraded.start_run("", MODEL)
        new_id, _ = upgraded.add_asset_with_faces(
            run_id, make_asset(1, retain_until=NOW - timedelta(days=1)), [], MODEL
        )
        assert upgraded.expired_asset_ids(NOW) == [new_id]  # the old row (id 7) has no retention: never expires
    assets = metadata.tables["assets"]
    with raw_engine.connect() as connection:
        rows = dict(connection.execute(sa.select(assets.c.uri, assets.c.retain_until)).all())
        indexes = {index["name"] for index in sa.inspect(connection).get_indexes("assets")}
    assert rows["/old/photo.jpg"] is None
    assert rows["/photos/1.jpg"] is not None
    assert "ix_assets_retain_until" in indexes


def test_expired_faces_and_assets_are_selected_by_retain_until(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    _, expired = catalog.add_asset_with_faces(
        run_id, make_asset(1, retain_until=NOW - timedelta(seconds=1)), [make_face(1), make_face(2)], MODEL
    )
    _, at_the_cut = catalog.add_asset_with_faces(run_id, make_asset(2, retain_until=NOW), [make_face(3)], MODEL)
    _, later = catalog.add_asset_with_faces(
        run_id, make_asset(3, retain_until=NOW + timedelta(days=1)), [make_face(4)], MODEL
    )
    _, kept = catalog.add_asset_with_faces(run_id, make_asset(4), [make_face(5)], MODEL)
    faceless_id, _ = catalog.add_asset_with_faces(
        run_id, make_asset(5, retain_until=NOW - timedelta(days=2)), [], MODEL
    )

    assert catalog.expired_face_ids(NOW, MODEL) == sorted(expired + at_the_cut)
    assert catalog.expired_face_ids(NOW, "another-model") == []
    record = catalog.faces_by_id([later[0]])[later[0]]
    assert record.retain_until == NOW + timedelta(days=1)
    assert catalog.faces_by_id([kept[0]])[kept[0]].retain_until is None
    expired_assets = catalog.expired_asset_ids(NOW)
    assert faceless_id in expired_assets and len(expired_assets) == 3

    # Only assets without faces go: the two expired ones still hold faces until those are deleted.
    assert catalog.delete_faceless_assets(expired_assets) == [(faceless_id, "/photos/5.jpg")]
    catalog.delete_faces(catalog.expired_face_ids(NOW, MODEL))
    assert catalog.expired_asset_ids(NOW) == []  # delete_faces took the assets it emptied
    assert catalog.count_faces(MODEL) == 2
