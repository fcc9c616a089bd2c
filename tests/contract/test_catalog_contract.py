"""One contract for the Catalog, run on SQLite and on PostgreSQL (the backends are conftest.py's fixtures)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import numpy.typing as npt
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from catalog_samples import DIM, MODEL, make_asset, make_face

from facetrace.catalog import SqlCatalog, open_catalog
from facetrace.catalog import sql_catalog as sql_catalog_module
from facetrace.catalog.schema import head_revision
from facetrace.catalog.tables import metadata
from facetrace.core.errors import CatalogError, ModelMismatchError

EXPECTED_TABLES = {"sources", "ingest_runs", "assets", "faces", "people", "ingest_errors", "alembic_version"}


# Schema


def test_open_creates_the_schema_at_the_head_revision(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    inspector = sa.inspect(raw_engine)
    assert set(inspector.get_table_names()) >= EXPECTED_TABLES
    assert {"ix_faces_model_id"} <= {index["name"] for index in inspector.get_indexes("faces")}
    assert any(index["unique"] and index["column_names"] == ["sha256"] for index in inspector.get_indexes("assets"))
    with raw_engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads() == (head_revision(),)


def test_migrations_and_tables_py_describe_the_same_schema(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    with raw_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_reopening_is_a_no_op(catalog_uri: str, catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("first", MODEL)
    catalog.finish_run(run_id, "finished", {})
    with open_catalog(catalog_uri) as again:
        assert [run.run_id for run in again.runs()] == [run_id]


def test_a_newer_schema_revision_is_refused(catalog_uri: str, catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    catalog.close()
    with raw_engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(CatalogError, match=r"9999_from_the_future, newer than this facetrace knows.*upgrade facetrace"):
        open_catalog(catalog_uri)


# Runs and errors


def test_runs_start_running_and_finish_with_stats(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("holiday photos", MODEL)
    (running,) = catalog.runs()
    assert (running.run_id, running.status, running.description, running.model_id) == (
        run_id,
        "running",
        "holiday photos",
        MODEL,
    )
    assert running.started_at.tzinfo is not None and running.finished_at is None
    assert (running.host, running.pid) == (socket.gethostname(), os.getpid())
    catalog.finish_run(run_id, "finished", {"images_seen": 3, "faces_added": 5})
    (finished,) = catalog.runs(status="finished")
    assert finished.stats == {"images_seen": 3, "faces_added": 5}
    assert finished.finished_at is not None and finished.finished_at >= finished.started_at
    assert catalog.runs(status="running") == []


def test_finish_run_refuses_unknown_runs_and_statuses(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    with pytest.raises(CatalogError, match="running"):
        catalog.finish_run(run_id, "running", {})
    with pytest.raises(CatalogError, match="no ingest run 424242"):
        catalog.finish_run(424242, "finished", {})


def test_runs_of_dead_processes_are_marked_interrupted_at_open(
    catalog_uri: str, catalog: SqlCatalog, raw_engine: sa.Engine
) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead_pid = int(dead.stdout)
    abandoned = catalog.start_run("killed mid-way", MODEL)
    alive = catalog.start_run("still going", MODEL)
    elsewhere = catalog.start_run("another host", MODEL)
    with raw_engine.begin() as connection:
        runs = metadata.tables["ingest_runs"]
        connection.execute(sa.update(runs).where(runs.c.id == abandoned).values(pid=dead_pid))
        connection.execute(sa.update(runs).where(runs.c.id == elsewhere).values(host="some-other-host", pid=dead_pid))
    with open_catalog(catalog_uri) as reopened:
        assert reopened.interrupted_at_open == (abandoned,)
        statuses = {run.run_id: run.status for run in reopened.runs()}
    assert statuses == {abandoned: "interrupted", alive: "running", elsewhere: "running"}


def test_errors_are_recorded_per_run(catalog: SqlCatalog) -> None:
    first = catalog.start_run("a", MODEL)
    second = catalog.start_run("b", MODEL)
    catalog.record_error(first, "/photos/broken.jpg", "cannot read as an image: truncated")
    catalog.record_error(second, "https://example.org/x.png", "HTTP 404")
    catalog.record_error(first, "/photos/huge.jpg", "too many pixels")
    errors = catalog.ingest_errors(first)
    assert [(error.uri, error.message) for error in errors] == [
        ("/photos/broken.jpg", "cannot read as an image: truncated"),
        ("/photos/huge.jpg", "too many pixels"),
    ]
    assert all(error.run_id == first and error.at.tzinfo is not None for error in errors)
    assert len(catalog.ingest_errors()) == 3
    assert catalog.stats().errors == 3


# Assets and faces


def test_add_asset_and_dedup_by_sha256(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    asset = make_asset(1)
    asset_id, face_ids = catalog.add_asset_with_faces(run_id, asset, [make_face(1), make_face(2)], MODEL)
    assert len(face_ids) == 2 and len(set(face_ids)) == 2
    assert catalog.known_sha256([asset.sha256, make_asset(2).sha256]) == {asset.sha256}

    again_id, again_faces = catalog.add_asset_with_faces(run_id, asset, [make_face(3)], MODEL)
    assert (again_id, again_faces) == (asset_id, [])
    assert catalog.count_faces() == 2
    assert catalog.stats().assets == 1


def test_an_asset_without_faces_is_still_known(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    asset_id, face_ids = catalog.add_asset_with_faces(run_id, make_asset(7), [], MODEL)
    assert face_ids == [] and asset_id > 0
    assert catalog.known_sha256([make_asset(7).sha256]) == {make_asset(7).sha256}


def test_losing_an_insert_race_returns_the_winner(catalog: SqlCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = catalog.start_run("", MODEL)
    winner_id, _ = catalog.add_asset_with_faces(run_id, make_asset(1), [make_face(1)], MODEL)
    real_lookup = sql_catalog_module._asset_id
    calls = {"n": 0}

    def blind_first_lookup(connection: sa.Connection, sha256: str) -> int | None:
        # The first lookup misses, as if another process inserted the asset right after it.
        calls["n"] += 1
        return None if calls["n"] == 1 else real_lookup(connection, sha256)

    monkeypatch.setattr(sql_catalog_module, "_asset_id", blind_first_lookup)
    assert catalog.add_asset_with_faces(run_id, make_asset(1), [make_face(2)], MODEL) == (winner_id, [])
    assert catalog.count_faces() == 1


def test_known_sha256_handles_large_batches(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    for number in range(3):
        catalog.add_asset_with_faces(run_id, make_asset(number), [], MODEL)
    asked = [make_asset(number).sha256 for number in range(1200)]
    assert catalog.known_sha256(asked) == {make_asset(number).sha256 for number in range(3)}
    assert catalog.known_sha256([]) == set()


def test_faces_round_trip_exactly(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    face = make_face(5, flags=("small", "blurry"))
    asset_id, (face_id,) = catalog.add_asset_with_faces(run_id, make_asset(1), [face], MODEL)
    record = catalog.faces_by_id([face_id])[face_id]
    assert (record.face_id, record.asset_id, record.model_id) == (face_id, asset_id, MODEL)
    assert record.box == face.detection.box
    np.testing.assert_array_equal(record.landmarks, face.detection.landmarks)
    assert record.landmarks.dtype == np.float32 and record.landmarks.shape == (5, 2)
    assert record.detection_score == face.detection.score
    assert record.quality_score == face.quality.score
    assert record.quality_flags == ("small", "blurry")
    assert (record.asset_uri, record.asset_sha256) == ("/photos/1.jpg", make_asset(1).sha256)
    assert record.thumbnail_path is None

    ids, vectors = catalog.embeddings_by_id([face_id])
    assert ids.tolist() == [face_id] and vectors.dtype == np.float32
    assert vectors[0].tobytes() == face.embedding.vector.astype("<f4").tobytes()


def test_faces_by_id_skips_unknown_ids(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    _, face_ids = catalog.add_asset_with_faces(run_id, make_asset(1), [make_face(1)], MODEL)
    assert set(catalog.faces_by_id([face_ids[0], 987654])) == {face_ids[0]}
    assert catalog.faces_by_id([]) == {}


def test_provenance_fields_and_aware_timestamps(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    captured = datetime(2021, 6, 5, 14, 30, 15, 250_000, tzinfo=timezone(timedelta(hours=2)))
    before = datetime.now(UTC)
    asset = make_asset(
        1, source_page="https://example.org/gallery?page=2", captured_at=captured, extra={"camera": "X100"}
    )
    _, (face_id,) = catalog.add_asset_with_faces(run_id, asset, [make_face(1)], MODEL, width=640, height=480)
    record = catalog.faces_by_id([face_id])[face_id]
    assert record.source_page == "https://example.org/gallery?page=2"
    assert record.captured_at == captured
    assert record.captured_at is not None and record.captured_at.utcoffset() == timedelta(0)
    assert record.ingested_at is not None and record.ingested_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= record.ingested_at <= datetime.now(UTC) + timedelta(seconds=5)


def test_naive_capture_times_are_refused(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    with pytest.raises(CatalogError, match="no time zone"):
        catalog.add_asset_with_faces(run_id, make_asset(1, captured_at=datetime(2020, 1, 1)), [], MODEL)
    assert catalog.known_sha256([make_asset(1).sha256]) == set()


def test_source_and_legal_basis_are_kept(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    run_id = catalog.start_run("", MODEL)
    asset = make_asset(1, source_name="press-archive", legal_basis="contract 2024-17")
    asset_id, _ = catalog.add_asset_with_faces(run_id, asset, [], MODEL)
    assert catalog.get_or_create_source("press-archive") == catalog.get_or_create_source("press-archive")
    sources, assets = metadata.tables["sources"], metadata.tables["assets"]
    with raw_engine.connect() as connection:
        row = connection.execute(
            sa.select(sources.c.name, sources.c.legal_basis).join(assets).where(assets.c.id == asset_id)
        ).one()
    assert tuple(row) == ("press-archive", "contract 2024-17")


def test_set_thumbnail_paths(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    _, face_ids = catalog.add_asset_with_faces(run_id, make_asset(1), [make_face(1), make_face(2)], MODEL)
    catalog.set_thumbnail_paths({face_ids[0]: "thumbs/aa/1.jpg", face_ids[1]: "thumbs/bb/2.jpg"})
    records = catalog.faces_by_id(face_ids)
    assert [records[face_id].thumbnail_path for face_id in face_ids] == ["thumbs/aa/1.jpg", "thumbs/bb/2.jpg"]
    catalog.set_thumbnail_paths({})


def test_deleting_an_asset_deletes_its_faces(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    run_id = catalog.start_run("", MODEL)
    asset_id, face_ids = catalog.add_asset_with_faces(run_id, make_asset(1), [make_face(1), make_face(2)], MODEL)
    assets = metadata.tables["assets"]
    with raw_engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Foreign keys are per connection in SQLite; this raw engine is not the catalog's.
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.execute(sa.delete(assets).where(assets.c.id == asset_id))
        connection.commit()
    assert catalog.faces_by_id(face_ids) == {}
    assert catalog.count_faces() == 0


# Models and embeddings


def test_faces_of_another_model_are_refused(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    with pytest.raises(ModelMismatchError, match="other-model"):
        catalog.add_asset_with_faces(run_id, make_asset(1), [make_face(1), make_face(2, "other-model")], MODEL)
    with pytest.raises(ModelMismatchError, match=f"ingest run {run_id}"):
        catalog.add_asset_with_faces(run_id, make_asset(1), [make_face(1, "other-model")], "other-model")
    assert catalog.count_faces() == 0 and catalog.known_sha256([make_asset(1).sha256]) == set()


def test_one_model_keeps_one_dimension(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    catalog.add_asset_with_faces(run_id, make_asset(1), [make_face(1)], MODEL)
    with pytest.raises(CatalogError, match=f"{DIM}-dimensional embeddings in this catalog, not 8"):
        catalog.add_asset_with_faces(run_id, make_asset(2), [make_face(2, dim=8)], MODEL)


def test_iter_embeddings_in_batches_of_one_model(catalog: SqlCatalog) -> None:
    main_run = catalog.start_run("", MODEL)
    other_run = catalog.start_run("", "other-model")
    expected: dict[int, npt.NDArray[np.float32]] = {}
    for number in range(9):
        batch = [make_face(number * 10 + k) for k in range(3)]
        _, face_ids = catalog.add_asset_with_faces(main_run, make_asset(number), batch, MODEL)
        expected.update({face_id: face.embedding.vector for face_id, face in zip(face_ids, batch, strict=True)})
        catalog.add_asset_with_faces(
            other_run, make_asset(100 + number), [make_face(number, "other-model")], "other-model"
        )

    batches = list(catalog.iter_embeddings(MODEL, batch_size=10))
    assert [len(ids) for ids, _ in batches] == [10, 10, 7]
    ids = np.concatenate([batch_ids for batch_ids, _ in batches])
    vectors = np.concatenate([batch_vectors for _, batch_vectors in batches])
    assert ids.dtype == np.int64 and vectors.dtype == np.float32 and vectors.shape == (27, DIM)
    assert ids.tolist() == sorted(expected)
    np.testing.assert_array_equal(vectors, np.stack([expected[int(face_id)] for face_id in ids]))

    assert catalog.face_ids(MODEL).tolist() == sorted(expected)
    assert catalog.count_faces(MODEL) == 27 and catalog.count_faces("other-model") == 9 and catalog.count_faces() == 36
    assert list(catalog.iter_embeddings("never-used")) == []
    assert catalog.stats().faces_by_model == {MODEL: 27, "other-model": 9}


def test_embeddings_by_id_keeps_the_order_asked(catalog: SqlCatalog) -> None:
    run_id = catalog.start_run("", MODEL)
    batch = [make_face(k) for k in range(4)]
    _, face_ids = catalog.add_asset_with_faces(run_id, make_asset(1), batch, MODEL)
    asked = [face_ids[2], 999_999, face_ids[0], face_ids[2]]
    ids, vectors = catalog.embeddings_by_id(asked)
    assert ids.tolist() == [face_ids[2], face_ids[0]]
    np.testing.assert_array_equal(vectors, np.stack([batch[2].embedding.vector, batch[0].embedding.vector]))
    empty_ids, empty_vectors = catalog.embeddings_by_id([])
    assert empty_ids.shape == (0,) and empty_vectors.shape[0] == 0
    assert catalog.embeddings_by_id(face_ids, model_id="other-model")[0].tolist() == []


# People


def test_a_label_names_the_subject_face_and_not_the_others(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    # Issue 10 changed this: a photo's label used to show on every face of it; now it names its subject face only.
    run_id = catalog.start_run("", MODEL)
    _, (alice_face,) = catalog.add_asset_with_faces(run_id, make_asset(1, label="Alice"), [make_face(1)], MODEL)
    _, group_faces = catalog.add_asset_with_faces(
        run_id, make_asset(2, label="Alice"), [make_face(2), make_face(3)], MODEL
    )
    _, (unlabelled,) = catalog.add_asset_with_faces(run_id, make_asset(3), [make_face(4)], MODEL)
    records = catalog.faces_by_id([alice_face, *group_faces, unlabelled])
    # Two faces of one size and no photo size: neither dominates, so neither is Alice; both are in her photo.
    assert [records[face_id].label for face_id in (alice_face, *group_faces, unlabelled)] == [
        "Alice",
        None,
        None,
        None,
    ]
    assert [records[face_id].photo_label for face_id in (alice_face, *group_faces, unlabelled)] == [
        "Alice",
        "Alice",
        "Alice",
        None,
    ]
    assert [records[face_id].photo_role for face_id in (alice_face, *group_faces, unlabelled)] == [
        "subject",
        "unattributed",
        "unattributed",
        None,
    ]
    alice = catalog.get_or_create_person("Alice")
    face_table = metadata.tables["faces"]
    with raw_engine.connect() as connection:
        people_of = dict(connection.execute(sa.select(face_table.c.id, face_table.c.person_id)).all())
    assert people_of == {alice_face: alice, group_faces[0]: None, group_faces[1]: None, unlabelled: None}

    assert catalog.get_or_create_person(" Alice ") == alice
    bob = catalog.get_or_create_person("Bob")
    assert catalog.assign_person([group_faces[1], unlabelled], bob) == 2
    relabelled = catalog.faces_by_id([group_faces[1], unlabelled])
    assert {record.label for record in relabelled.values()} == {"Bob"}
    assert catalog.stats().people == 2
    with pytest.raises(CatalogError, match="blank"):
        catalog.get_or_create_person("  ")


# PostgreSQL only


@pytest.mark.postgres
def test_a_missing_postgres_database_is_created(postgres_server: sa.Engine) -> None:
    name = f"facetrace_created_{secrets.token_hex(6)}"
    # The plain postgresql:// form users write, translated to the psycopg 3 driver.
    plain = postgres_server.url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    try:
        with open_catalog(plain) as created:
            assert created.dialect == "postgresql"
            assert created.count_faces() == 0
    finally:
        with postgres_server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
