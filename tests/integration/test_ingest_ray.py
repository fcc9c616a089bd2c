"""Distributed ingest on a local Ray instance, with real models on real LFW photos: the same faces as a single-process
ingest, resumable, errors reported, memory bounded, and the CLI joins a running cluster by its address.

One Ray instance (2 CPUs, no dashboard) serves the whole module: starting Ray costs 10-20 s. Skipped without the ray
extra unless FACETRACE_REQUIRE_RAY=1 (CI).
"""

from __future__ import annotations

import csv
import functools
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

if os.environ.get("FACETRACE_REQUIRE_RAY") != "1":
    pytest.importorskip("ray", reason="ray not installed: pip install 'facetrace[ray]'")

import ray

from facetrace.core.errors import FacetraceError, ModelMismatchError
from facetrace.core.types import FaceRecord
from facetrace.engine import Engine, open_engine
from facetrace.ingest.ray_runner import RayAnalysis
from facetrace.ingest.runner import IngestRunner
from facetrace.ingest.sources import SourceItem
from facetrace.vision.analyzer import open_analyzer
from facetrace.vision.options import AnalyzerOptions

pytestmark = pytest.mark.slow

GALLERY_PHOTOS = 40
PROBES = 3
BATCH_SIZE = 8
RAY_CPUS = 2
# Identical arithmetic on identical bytes: only float summation order may differ between processes.
BOX_TOLERANCE_PX = 0.5
MIN_EMBEDDING_COSINE = 0.999
FACETRACE = [sys.executable, "-m", "facetrace"]


@dataclass(frozen=True)
class Photos:
    listing: Path  # the gallery photos and one unreadable file, as an @list
    probes: list[Path]  # other photos of gallery people, not ingested


RAY_START_ATTEMPTS = 3


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray instance for this module; yields its address (what `--ray host:port` takes). Ray gives its raylet
    30 s to register, fixed in its code: on a machine busy with other work that can pass, so start-up is tried
    again before the module is given up."""
    for attempt in range(1, RAY_START_ATTEMPTS + 1):
        try:
            ray.init(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == RAY_START_ATTEMPTS:
                raise
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def photos(lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> Photos:
    """People with several photos: all but the last of each in the gallery (40 photos), a last one as a probe."""
    by_person: dict[str, list[Path]] = defaultdict(list)
    with (lfw / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_person[row["identity"]].append(lfw / row["path"])
    gallery: list[Path] = []
    probes: list[Path] = []
    for paths in (p for p in by_person.values() if len(p) >= 2):
        if len(gallery) + len(paths) - 1 > GALLERY_PHOTOS:
            break
        gallery += paths[:-1]
        probes.append(paths[-1])
    folder = tmp_path_factory.mktemp("ray-photos")
    bad = folder / "not-a-photo.jpg"
    bad.write_bytes(b"this is not an image")
    listing = folder / "photos.txt"
    listing.write_text("".join(f"{path}\n" for path in [*gallery, bad]))
    return Photos(listing, probes[:PROBES])


def _faces_by_asset(engine: Engine) -> dict[str, list[FaceRecord]]:
    records = engine.catalog.faces_by_id(engine.catalog.face_ids(engine.model_id).tolist())
    grouped: dict[str, list[FaceRecord]] = defaultdict(list)
    for record in records.values():
        grouped[record.asset_sha256].append(record)
    return {sha: sorted(faces, key=lambda f: (f.box.x1, f.box.y1)) for sha, faces in grouped.items()}


def _embeddings(engine: Engine, faces: list[FaceRecord]) -> np.ndarray:
    ids, vectors = engine.catalog.embeddings_by_id([f.face_id for f in faces], engine.model_id)
    order = {face_id: n for n, face_id in enumerate(ids.tolist())}
    return np.vstack([vectors[order[f.face_id]] for f in faces])


def test_ray_ingest_gives_the_same_faces_as_one_process(ray_cluster: str, photos: Photos, tmp_path: Path) -> None:
    with (
        open_engine(tmp_path / "one", workers=1, batch_size=BATCH_SIZE) as single,
        open_engine(tmp_path / "ray", ray_address="local", batch_size=BATCH_SIZE) as distributed,
    ):
        a = single.ingest.run([f"@{photos.listing}"])
        b = distributed.ingest.run([f"@{photos.listing}"])
        assert a.images_added == b.images_added >= GALLERY_PHOTOS - 5
        assert (a.faces_added, a.errors) == (b.faces_added, b.errors)
        assert b.errors == 1 and "not-a-photo.jpg" in b.error_messages[0]  # reported; the run completed
        assert [run.status for run in distributed.catalog.runs()] == ["finished"]

        one, many = _faces_by_asset(single), _faces_by_asset(distributed)
        assert one.keys() == many.keys()
        for sha, faces in one.items():
            assert len(faces) == len(many[sha]), sha
            for x, y in zip(faces, many[sha], strict=True):
                np.testing.assert_allclose(
                    [x.box.x1, x.box.y1, x.box.x2, x.box.y2], [y.box.x1, y.box.y1, y.box.x2, y.box.y2],
                    atol=BOX_TOLERANCE_PX,
                )  # fmt: skip
            cosines = np.sum(_embeddings(single, faces) * _embeddings(distributed, many[sha]), axis=1)
            assert cosines.min() > MIN_EMBEDDING_COSINE, sha
        assert single.index.check().consistent and distributed.index.check().consistent

        for probe in photos.probes:
            top_one = single.search.file(probe, top_k=1)[0].hits[0]
            top_many = distributed.search.file(probe, top_k=1)[0].hits[0]
            assert top_one.face.asset_sha256 == top_many.face.asset_sha256
            assert top_one.similarity == pytest.approx(top_many.similarity, abs=1e-3)

        again = distributed.ingest.run([f"@{photos.listing}"])
        assert (again.images_added, again.faces_added) == (0, 0)
        assert again.images_skipped == b.images_added


def test_batches_in_flight_are_bounded(ray_cluster: str, photos: Photos, tmp_path: Path) -> None:
    """Back-pressure: the driver reads a batch only when fewer than actors x 2 are out, however long the source."""
    paths = photos.listing.read_text().split()[:12]
    pulled = returned = most_out = 0

    def batches() -> Iterator[tuple[int, list[tuple[bytes, str]]]]:
        nonlocal pulled, most_out
        for n in range(0, len(paths), 2):
            pulled += 1
            most_out = max(most_out, pulled - returned)
            yield n, [(Path(p).read_bytes(), p) for p in paths[n : n + 2]]

    with open_engine(tmp_path / "d") as engine:
        analysis = RayAnalysis(engine.analyzer_factory(), "local", model_id=engine.model_id, actors=RAY_CPUS)
        tags: list[int] = []
        for tag, results in analysis.map(batches()):
            returned += 1
            tags.append(tag)
            assert len(results) == 2
    assert sorted(tags) == list(range(0, len(paths), 2))
    assert most_out == RAY_CPUS * 2  # the window filled (work overlapped) and never grew past its bound


def _facetrace(*args: str) -> Any:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FACETRACE_")}
    done = subprocess.run(
        [*FACETRACE, *args], capture_output=True, text=True, env=environment, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_cli_joins_a_running_cluster_by_address(ray_cluster: str, photos: Photos, tmp_path: Path) -> None:
    subset = tmp_path / "subset.txt"
    subset.write_text("".join(photos.listing.read_text().splitlines(keepends=True)[:10]))
    data = str(tmp_path / "d")
    first = _facetrace("ingest", f"@{subset}", "--data", data, "--ray", ray_cluster, "--batch-size", "4", "--json")
    assert first["images_added"] == 10 and first["faces_added"] >= 10 and first["errors"] == 0
    again = _facetrace("ingest", f"@{subset}", "--data", data, "--ray", ray_cluster, "--json")
    assert (again["images_added"], again["images_skipped"]) == (0, 10)


def test_a_node_without_the_pack_stops_the_run_and_a_rerun_resumes(
    ray_cluster: str, photos: Photos, tmp_path: Path
) -> None:
    paths = photos.listing.read_text().split()[:6]
    with open_engine(tmp_path / "d", batch_size=2) as engine:
        # What an actor on a node lacking the pack does: its analyzer cannot be built.
        missing_pack = functools.partial(open_analyzer, AnalyzerOptions(pack="no-such-pack"))
        runner = IngestRunner(
            engine.analyzer_factory(),
            engine.catalog,
            engine.index.stored,
            engine.settings.thumbnails_dir,
            model_id=engine.model_id,
            batch_size=2,
            analysis=RayAnalysis(missing_pack, "local", model_id=engine.model_id, actors=1),
        )
        with pytest.raises(FacetraceError, match="Ray ingest failed"):
            runner.run((SourceItem(p) for p in paths), "broken node")
        assert [run.status for run in engine.catalog.runs()] == ["interrupted"]
        assert engine.catalog.count_faces() == 0
        resumed = engine.ingest.run(paths)
        assert resumed.images_added == len(paths) and resumed.errors == 0


def test_actors_running_another_model_are_refused(ray_cluster: str, tmp_path: Path) -> None:
    with open_engine(tmp_path / "d") as engine:
        analysis = RayAnalysis(engine.analyzer_factory(), "local", model_id="another-model", actors=1)
        with pytest.raises(ModelMismatchError, match="another-model"):
            next(analysis.map(iter([(0, [(b"unused", "unused.jpg")])])))
