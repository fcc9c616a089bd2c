"""Catalog URIs, SQLite connection settings and concurrent SQLite writers (PostgreSQL is in the contract suite)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from facetrace.catalog import open_catalog
from facetrace.catalog.blobs import decode_flags, encode_flags
from facetrace.catalog.database import SQLITE_BUSY_TIMEOUT_MS, catalog_url, create_catalog_engine
from facetrace.catalog.tables import UtcDateTime
from facetrace.core.errors import CatalogError
from facetrace.core.types import AnalyzedFace, BoundingBox, Detection, Embedding, FaceQuality, MediaAsset

MODEL = "m"


@pytest.mark.parametrize(
    ("uri", "driver"),
    [
        ("postgresql://user:secret@db.example/facetrace", "postgresql+psycopg"),
        ("postgres://user@db.example/facetrace", "postgresql+psycopg"),
        ("postgresql+psycopg://user@db.example/facetrace", "postgresql+psycopg"),
        ("sqlite:///data/catalog.db", "sqlite+pysqlite"),
        ("sqlite://", "sqlite+pysqlite"),
    ],
)
def test_uris_choose_the_supported_drivers(uri: str, driver: str) -> None:
    assert catalog_url(uri).drivername == driver


@pytest.mark.parametrize("uri", ["mysql://user@host/db", "not a uri at all"])
def test_unsupported_uris_are_refused(uri: str) -> None:
    with pytest.raises(CatalogError, match=r"sqlite:///path/catalog\.db or postgresql://"):
        catalog_url(uri)


def test_unreachable_postgres_is_a_catalog_error_without_the_password() -> None:
    with pytest.raises(CatalogError, match="cannot connect to the catalog") as raised:
        open_catalog("postgresql://user:hunter2@127.0.0.1:1/facetrace?connect_timeout=2")
    assert "hunter2" not in str(raised.value)


def test_sqlite_file_and_its_directory_are_created(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "catalog.db"
    with open_catalog(f"sqlite:///{path}") as catalog:
        assert catalog.dialect == "sqlite"
    assert path.exists()


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_in_memory_sqlite_catalog_works_for_quick_experiments() -> None:
    with open_catalog("sqlite://") as catalog:
        run_id = catalog.start_run("", MODEL)
        catalog.add_asset_with_faces(run_id, MediaAsset(sha256="a" * 64, uri="x.jpg"), [_face(0)], MODEL)
        assert catalog.count_faces(MODEL) == 1


def test_concurrent_sqlite_writers_wait_for_each_other(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    open_catalog(uri).close()

    def ingest(worker: int) -> int:
        # Each worker has its own catalog (own connections), like separate processes; half the images are shared.
        with open_catalog(uri) as catalog:
            run_id = catalog.start_run(f"worker {worker}", MODEL)
            added = 0
            for number in range(20):
                sha256 = f"{number:064x}" if number % 2 else f"{worker:032x}{number:032x}"
                asset = MediaAsset(sha256=sha256, uri=f"{worker}/{number}.jpg", label=f"person {number % 3}")
                added += len(catalog.add_asset_with_faces(run_id, asset, [_face(number)], MODEL)[1])
            catalog.finish_run(run_id, "finished", {"faces_added": added})
            return added

    with ThreadPoolExecutor(max_workers=4) as pool:
        added = sum(pool.map(ingest, range(4)))
    with open_catalog(uri) as catalog:
        assert catalog.stats().assets == 4 * 10 + 10
        assert catalog.count_faces(MODEL) == added == 50
        assert catalog.stats().people == 3
        assert catalog.stats().runs_by_status == {"finished": 4}


def test_a_database_locked_too_long_is_a_catalog_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "catalog.db"
    monkeypatch.setattr("facetrace.catalog.database.SQLITE_BUSY_TIMEOUT_MS", 50)
    with open_catalog(f"sqlite:///{path}") as catalog:
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
            with pytest.raises(CatalogError, match=r"catalog at .*catalog\.db failed: database is locked"):
                catalog.start_run("", MODEL)
        finally:
            holder.close()
        assert catalog.start_run("", MODEL) > 0


def test_naive_datetimes_never_reach_the_database() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        UtcDateTime().process_bind_param(datetime(2020, 1, 1), sa.create_engine("sqlite://").dialect)


def test_quality_flags_round_trip_and_commas_are_refused() -> None:
    assert decode_flags(encode_flags(("small", "blurry"))) == ("small", "blurry")
    assert decode_flags(encode_flags(())) == ()
    with pytest.raises(ValueError, match="comma"):
        encode_flags(("a,b",))


def _face(seed: int) -> AnalyzedFace:
    vector = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return AnalyzedFace(
        detection=Detection(BoundingBox(0, 0, 10, 10), np.zeros((5, 2), dtype=np.float32), 0.9),
        quality=FaceQuality(0.8, 10.0, 1.0, 0.9, 0.0, 0.0),
        embedding=Embedding(MODEL, vector / np.linalg.norm(vector)),
    )
