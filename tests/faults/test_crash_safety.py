"""Crash safety with real models on real photos (docs/decisions/0001): an ingest killed with SIGKILL at any point and
run again loses nothing and duplicates nothing; the catalog and index agree afterwards; a damaged index says how to
recover, and recovering works."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from facetrace.catalog import open_catalog
from facetrace.cli.main import app
from facetrace.engine import open_engine
from facetrace.index.faiss.backend import FaissIndex

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)"),
]
runner = CliRunner()

PHOTOS = 160
BATCH_SIZE = 8
KILL_TIMEOUT_S = 120.0
# The console entry point, run by this interpreter so the test does not depend on PATH.
FACETRACE = [sys.executable, "-m", "facetrace"]


@dataclass(frozen=True)
class CatalogState:
    runs: int
    assets: int


@pytest.fixture(scope="module")
def photo_list(tmp_path_factory: pytest.TempPathFactory, lfw: Path) -> Path:
    with (lfw / "manifest.csv").open(newline="") as handle:
        paths = [lfw / row["path"] for _, row in zip(range(PHOTOS), csv.DictReader(handle), strict=False)]
    listing = tmp_path_factory.mktemp("crash") / "photos.txt"
    listing.write_text("".join(f"{path}\n" for path in paths))
    return listing


def _environment() -> dict[str, str]:
    # The child reads only what the command line says: no FACETRACE_* setting of the caller leaks in.
    return {key: value for key, value in os.environ.items() if not key.startswith("FACETRACE_")}


def _start_ingest(photo_list: Path, data: Path, log: Path) -> subprocess.Popen[bytes]:
    """The ingest command in a child process: its JSON summary goes to log, its messages to log + ".err"."""
    command = [*FACETRACE, "ingest", f"@{photo_list}", "--data", str(data), "--workers", "1"]
    command += ["--batch-size", str(BATCH_SIZE), "--json"]
    with log.open("wb") as output, log.with_name(log.name + ".err").open("wb") as errors:
        return subprocess.Popen(command, stdout=output, stderr=errors, env=_environment())


def _output(log: Path) -> str:
    return log.read_text() + log.with_name(log.name + ".err").read_text()


def _facetrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FACETRACE, *args], capture_output=True, text=True, env=_environment(), timeout=KILL_TIMEOUT_S, check=False
    )


def _state(data: Path) -> CatalogState:
    """What the catalog holds right now, read without writing (the ingest is still running)."""
    db = data / "catalog.db"
    if not db.exists():
        return CatalogState(0, 0)
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
            runs = connection.execute("SELECT count(*) FROM ingest_runs").fetchone()[0]
            assets = connection.execute("SELECT count(*) FROM assets").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not created yet
        return CatalogState(0, 0)
    return CatalogState(int(runs), int(assets))


def _kill_when(
    process: subprocess.Popen[bytes], data: Path, ready: Callable[[CatalogState], bool], log: Path
) -> CatalogState:
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the ingest ended (exit {process.returncode}) before it could be killed:\n{_output(log)}")
        state = _state(data)
        if ready(state):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return state
        time.sleep(0.02)
    process.kill()
    process.wait()
    pytest.fail(f"the ingest never reached the kill point:\n{_output(log)}")


def _faces_per_image(data: Path) -> list[tuple[str, int]]:
    with closing(sqlite3.connect(f"file:{data / 'catalog.db'}?mode=ro", uri=True)) as connection:
        rows = connection.execute(
            "SELECT a.sha256, count(f.id) FROM assets a LEFT JOIN faces f ON f.asset_id = a.id GROUP BY a.id"
        ).fetchall()
    return sorted((str(sha256), int(count)) for sha256, count in rows)


def test_an_ingest_killed_three_times_and_resumed_loses_and_duplicates_nothing(
    tmp_path: Path, photo_list: Path
) -> None:
    # The reference: the same photos ingested once without interruption, alongside the interrupted runs.
    clean_data, clean_log = tmp_path / "clean", tmp_path / "clean.log"
    clean = _start_ingest(photo_list, clean_data, clean_log)

    data = tmp_path / "crashed"
    # 1. Early: as soon as the run is recorded, before the models have loaded and any image is stored.
    log = tmp_path / "run1.log"
    _kill_when(_start_ingest(photo_list, data, log), data, lambda s: s.runs == 1, log)
    assert _state(data).assets == 0, "the early kill came after the first image was stored"
    # 2. Mid-run and 3. late: once 40% and 80% of the photos are stored (inside some batch, wherever it is).
    log = tmp_path / "run2.log"
    mid = _kill_when(_start_ingest(photo_list, data, log), data, lambda s: s.assets >= PHOTOS * 0.4, log)
    assert mid.runs == 2
    # The index is saved only every 60 s and at the end, so the kill left faces in the catalog that it lacks:
    # `check` says so (exit 1) without repairing anything.
    lagging = _facetrace("check", "--data", str(data), "--json")
    assert lagging.returncode == 1, lagging.stdout + lagging.stderr
    report = json.loads(lagging.stdout)
    assert report["missing_from_index"] > 0 and not report["consistent"] and not report["repaired"]
    log = tmp_path / "run3.log"
    _kill_when(_start_ingest(photo_list, data, log), data, lambda s: s.assets >= PHOTOS * 0.8, log)
    # 4. The last run completes, storing only what the killed runs had not.
    stored_before = _state(data).assets
    log = tmp_path / "run4.log"
    last = _start_ingest(photo_list, data, log)
    assert last.wait(timeout=KILL_TIMEOUT_S) == 0, _output(log)
    summary = json.loads(log.read_text())
    assert summary["errors"] == 0, summary["error_messages"]
    assert summary["images_seen"] == PHOTOS
    assert summary["images_skipped"] == stored_before
    assert summary["images_added"] == PHOTOS - stored_before

    assert clean.wait(timeout=KILL_TIMEOUT_S) == 0, _output(clean_log)
    expected = _faces_per_image(clean_data)
    assert len(expected) == PHOTOS
    got = _faces_per_image(data)
    assert len({sha256 for sha256, _ in got}) == len(got), "an image was stored twice"
    assert got == expected, "the interrupted ingest stored other images or faces than a clean one"

    consistent = _facetrace("check", "--data", str(data), "--json")
    assert consistent.returncode == 0, consistent.stdout + consistent.stderr
    report = json.loads(consistent.stdout)
    assert report["consistent"] and report["catalog_faces"] == report["index_entries"] == sum(n for _, n in expected)

    with closing(open_catalog(f"sqlite:///{data / 'catalog.db'}")) as catalog:
        statuses = [run.status for run in sorted(catalog.runs(), key=lambda run: run.run_id)]
    assert statuses == ["interrupted", "interrupted", "interrupted", "finished"]


# -- a damaged or lagging index -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_gallery(tmp_path_factory: pytest.TempPathFactory, photo_list: Path) -> Path:
    data = tmp_path_factory.mktemp("gallery") / "data"
    photos = photo_list.read_text().splitlines()[:12]
    with open_engine(data, workers=1) as engine:
        summary = engine.ingest.run(photos)
    assert summary.errors == 0 and summary.faces_added >= 12
    return data


@pytest.fixture
def gallery(small_gallery: Path, tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    shutil.copytree(small_gallery, data)
    yield data


def _check(data: Path, *extra: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["check", "--data", str(data), "--json", *extra])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_a_truncated_index_file_names_the_rebuild_command_and_rebuild_fixes_it(gallery: Path, photo_list: Path) -> None:
    index_file = gallery / "faces.faiss"
    index_file.write_bytes(index_file.read_bytes()[: index_file.stat().st_size // 2])
    broken = runner.invoke(app, ["check", "--data", str(gallery)])
    assert broken.exit_code == 2
    assert "faces.faiss" in broken.stderr and "facetrace index rebuild" in broken.stderr
    probe = photo_list.read_text().splitlines()[0]
    searched = runner.invoke(app, ["search", probe, "--data", str(gallery)])
    assert searched.exit_code == 2 and "facetrace index rebuild" in searched.stderr  # nothing runs on a broken index

    rebuilt = runner.invoke(app, ["index", "rebuild", "--data", str(gallery)])
    assert rebuilt.exit_code == 0, rebuilt.output
    code, report = _check(gallery)
    assert code == 0 and report["consistent"]
    assert rebuilt.stdout.strip() == f"index rebuilt: {report['catalog_faces']} faces"


def test_bytes_damaged_inside_the_index_file_are_caught_and_rebuild_gives_right_answers(
    gallery: Path, photo_list: Path
) -> None:
    """4 KB of random bytes written inside faces.faiss at the same size: once `check` said all was well and searches
    returned similarities of 3e35 as strong leads; the sidecar's checksum now refuses the file."""
    index_file = gallery / "faces.faiss"
    data = bytearray(index_file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = os.urandom(len(data[middle : middle + 4096]))
    index_file.write_bytes(bytes(data))
    broken = runner.invoke(app, ["check", "--data", str(gallery)])
    assert broken.exit_code == 2
    assert "checksum" in broken.stderr and "facetrace index rebuild" in broken.stderr
    probes = photo_list.read_text().splitlines()[:5]
    searched = runner.invoke(app, ["search", probes[0], "--data", str(gallery)])
    assert searched.exit_code == 2 and "facetrace index rebuild" in searched.stderr

    assert runner.invoke(app, ["index", "rebuild", "--data", str(gallery)]).exit_code == 0
    code, report = _check(gallery)
    assert code == 0 and report["consistent"]
    with open_engine(gallery, workers=1) as engine:
        for probe in probes:
            top = engine.search.file(probe)[0].hits[0]
            assert top.face.asset_uri == probe and -1.0 <= top.similarity <= 1.0 + 1e-5


def test_check_compares_index_vectors_with_the_catalog_and_repair_puts_them_back(gallery: Path) -> None:
    """An index that holds a wrong vector for a face (saved intact, so no checksum can tell) fails check."""
    with open_engine(gallery, workers=1) as engine:
        face_ids = engine.catalog.face_ids(engine.model_id)
        model_id, dim = engine.model_id, engine.pack.embedding_dim
    victim = int(face_ids[len(face_ids) // 2])
    index = FaissIndex(gallery / "faces.faiss", model_id, dim)
    wrong = np.random.default_rng(3).standard_normal((1, dim)).astype(np.float32)
    index.add(np.asarray([victim], dtype=np.int64), wrong / np.linalg.norm(wrong))  # upsert: replaces the vector
    index.save()

    code, report = _check(gallery)
    assert code == 1 and report["vectors_checked"] == len(face_ids) and report["vectors_mismatched"] == 1
    assert report["missing_from_index"] == report["orphaned_in_index"] == 0
    code, sampled = _check(gallery, "--sample", "5")
    assert sampled["vectors_checked"] == 5
    code, repaired = _check(gallery, "--repair")
    assert code == 0 and repaired["repaired"] and repaired["consistent"]
    code, report = _check(gallery)
    assert code == 0 and report["vectors_mismatched"] == 0


def test_lost_thumbnails_are_reported_and_made_again_from_their_photos(gallery: Path) -> None:
    thumbnails = sorted((gallery / "thumbnails").rglob("*.jpg"))
    emptied, folder = thumbnails[0], thumbnails[-1].parent
    in_folder = len(list(folder.glob("*.jpg")))
    emptied.write_bytes(b"")
    shutil.rmtree(folder)
    lost = in_folder + (0 if emptied.parent == folder else 1)

    code, report = _check(gallery)
    assert code == 1 and report["thumbnails_missing"] == lost
    assert report["thumbnails_checked"] == len(thumbnails)
    code, repaired = _check(gallery, "--repair")
    assert code == 0 and repaired["thumbnails_restored"] == lost and repaired["consistent"]
    assert emptied.stat().st_size > 0 and emptied.read_bytes()[:2] == b"\xff\xd8"  # a JPEG again
    assert len(list(folder.glob("*.jpg"))) == in_folder
    code, report = _check(gallery)
    assert code == 0 and report["thumbnails_missing"] == 0


def test_an_index_that_lacks_faces_fails_check_until_repaired(gallery: Path) -> None:
    # Both files gone: the engine starts an empty index, which lacks every face the catalog holds.
    (gallery / "faces.faiss").unlink()
    (gallery / "faces.faiss.meta.json").unlink()
    code, report = _check(gallery)
    assert code == 1
    assert report["index_entries"] == 0 and report["missing_from_index"] == report["catalog_faces"] > 0
    code, report = _check(gallery)
    assert code == 1, "check without --repair must change nothing"

    code, report = _check(gallery, "--repair")
    assert code == 0 and report["repaired"]
    code, report = _check(gallery)
    assert code == 0 and report["consistent"] and report["index_entries"] == report["catalog_faces"]


def test_any_other_use_of_an_engine_reconciles_a_lagging_index_first(gallery: Path, photo_list: Path) -> None:
    (gallery / "faces.faiss").unlink()
    (gallery / "faces.faiss.meta.json").unlink()
    probe = photo_list.read_text().splitlines()[0]
    with open_engine(gallery, workers=1) as engine:
        hit = engine.search.file(probe)[0].hits[0]
        assert hit.similarity > 0.99 and hit.face.asset_uri == probe
        assert engine.index.check().consistent
    code, _ = _check(gallery)
    assert code == 0  # and the reconciled index was saved


def test_an_index_file_missing_beside_its_sidecar_names_the_rebuild_command(gallery: Path) -> None:
    (gallery / "faces.faiss").unlink()
    result = runner.invoke(app, ["check", "--data", str(gallery)])
    assert result.exit_code == 2
    assert "index file is missing" in result.stderr and "facetrace index rebuild" in result.stderr


class _Killed(BaseException):
    """Stands in for SIGKILL at one exact point of the runner, which a real kill hits only by chance."""


def test_a_kill_right_after_storing_an_image_leaves_no_face_without_its_thumbnail(
    tmp_path: Path, photo_list: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faces and their thumbnail paths are one transaction: a kill just after it loses nothing a re-run needs."""
    from facetrace.catalog.sql_catalog import SqlCatalog

    photos = photo_list.read_text().splitlines()[:3]
    real = SqlCatalog.add_asset_with_faces
    calls = 0

    def killed_after_second_image(self: SqlCatalog, *args: Any, **kwargs: Any) -> tuple[int, list[int]]:
        nonlocal calls
        calls += 1
        stored = real(self, *args, **kwargs)
        if calls == 2:
            raise _Killed
        return stored

    with open_engine(tmp_path / "data", workers=1) as engine:
        monkeypatch.setattr(SqlCatalog, "add_asset_with_faces", killed_after_second_image)
        with pytest.raises(_Killed):
            engine.ingest.run(photos)
        monkeypatch.setattr(SqlCatalog, "add_asset_with_faces", real)
        engine.ingest.run(photos)  # the resumed run
        faces = engine.catalog.faces_by_id(engine.catalog.face_ids(engine.model_id).tolist()).values()
    assert len({face.asset_sha256 for face in faces}) == 3
    assert all(face.thumbnail_path for face in faces), "faces stored without their thumbnails"
