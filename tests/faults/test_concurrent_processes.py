"""One owner for concurrency (engine/locking.py), with real models on real photos and real processes: a serving engine
sees what a separate ingest process adds, two ingest processes into one data directory take turns and leave catalog
and index in agreement, and the suppression list is read once per change."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facetrace.catalog.governance_store import SqlGovernanceStore
from facetrace.cli.main import app
from facetrace.engine import open_engine

pytestmark = pytest.mark.slow
runner = CliRunner()
FACETRACE = [sys.executable, "-m", "facetrace"]
CATCH_UP_S = 5.0


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("FACETRACE_")}


def _people(lfw: Path, count: int, per_person: int = 2) -> dict[str, list[Path]]:
    """count LFW people with at least per_person photos each, in manifest order."""
    by_person: dict[str, list[Path]] = {}
    with (lfw / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_person.setdefault(row["identity"], []).append(lfw / row["path"])
    chosen = [name for name, paths in by_person.items() if len(paths) >= per_person][:count]
    return {name: by_person[name][:per_person] for name in chosen}


def _ingest_process(data: Path, photos: list[Path], listing: Path) -> subprocess.Popen[str]:
    listing.write_text("".join(f"{p}\n" for p in photos))
    return subprocess.Popen(
        [*FACETRACE, "ingest", "--data", str(data), "--workers", "1", f"@{listing}"],
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_serving_engine_finds_faces_another_process_ingested_without_a_restart(lfw: Path, tmp_path: Path) -> None:
    people = _people(lfw, 6)
    names = list(people)
    first, later = names[:3], names[3:]
    data = tmp_path / "data"
    with open_engine(data, workers=1) as serving:
        serving.ingest.run([people[name][0] for name in first])
        before = serving.stats()["index_entries"]
        probe = people[later[0]][1]
        hits = serving.search.file(probe)[0].hits
        assert all(hit.face.asset_uri not in {str(p) for p in people[later[0]]} for hit in hits)

        ingest = _ingest_process(data, [people[name][0] for name in later], tmp_path / "later.txt")
        _out, err = ingest.communicate(timeout=600)
        assert ingest.returncode == 0, err
        finished = time.monotonic()

        found = False
        while time.monotonic() - finished < CATCH_UP_S:
            (result,) = serving.search.file(probe)
            if result.hits and result.hits[0].face.asset_uri == str(people[later[0]][0]):
                found = True
                break
            time.sleep(0.2)
        assert found, "the serving engine did not see the other process's faces"
        assert result.hits[0].evidence.gallery_size > before
        for name in later[1:]:
            (other,) = serving.search.file(people[name][1])
            assert other.hits[0].face.asset_uri == str(people[name][0])


def test_two_ingest_processes_into_one_data_directory_take_turns(lfw: Path, tmp_path: Path) -> None:
    people = _people(lfw, 8, per_person=1)
    photos = [paths[0] for paths in people.values()]
    data = tmp_path / "data"
    runner.invoke(app, ["users", "list", "--data", str(data)])  # create the catalog before the race
    a = _ingest_process(data, photos[:4], tmp_path / "a.txt")
    b = _ingest_process(data, photos[4:], tmp_path / "b.txt")
    outcomes = [process.communicate(timeout=900) for process in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outcomes
    checked = runner.invoke(app, ["check", "--data", str(data), "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert report["consistent"] and report["catalog_faces"] == report["index_entries"] >= len(photos)
    with open_engine(data, workers=1) as engine:
        for photo in photos:
            (result,) = engine.search.file(photo)[:1]
            assert result.hits[0].face.asset_uri == str(photo) and result.hits[0].similarity > 0.99


def test_a_second_writer_says_whom_it_waits_for(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_engine(data, workers=1) as holder, holder.lock.writing("a long ingest"):
        waiting = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from facetrace.engine import open_engine\n"
                "from facetrace.engine.locking import DataLock\n"
                "with open_engine(sys.argv[1], workers=1, on_wait=lambda m: print(m, flush=True)) as e:\n"
                "    e.lock._wait_s = 1.0\n"
                "    try:\n"
                "        e.index.rebuild()\n"
                "    except Exception as exc:\n"
                "        print('refused:', exc)\n",
                str(data),
            ],
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert waiting.returncode == 0, waiting.stderr
    assert "waiting for" in waiting.stdout and f"pid {os.getpid()}" in waiting.stdout
    assert "refused:" in waiting.stdout and "a long ingest" in waiting.stdout


def test_the_suppression_list_is_read_once_per_change_not_per_search(
    fr_examples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = fr_examples / "examples" / "knn_examples" / "train"
    probe = fr_examples / "examples" / "knn_examples" / "test" / "obama1.jpg"  # one face
    reads = 0
    real = SqlGovernanceStore.suppressed_vectors

    def counted(self: SqlGovernanceStore, model_id: str) -> np.ndarray:
        nonlocal reads
        reads += 1
        return real(self, model_id)

    monkeypatch.setattr(SqlGovernanceStore, "suppressed_vectors", counted)
    with open_engine(tmp_path / "data", workers=1) as engine:
        engine.ingest.run([train])  # read the (empty) list once to check each new face
        assert reads == 1
        for _ in range(5):
            engine.search.file(probe)
        assert reads == 1, "nothing was erased since: the list in memory is current"
        (top,) = engine.search.file(probe)[0].hits[:1]
        engine.erasure.erase_faces("admin", [top.face.face_id], "a test's erasure")
        for _ in range(5):
            engine.search.file(probe)
        assert reads == 2, "one erasure: one more read"
