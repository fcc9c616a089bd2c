"""The ingest runner with a fast fake analyzer over the real SQLite catalog and the exact index.

The same path with real models on real photos is tested in tests/integration/test_end_to_end.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest

from facetrace.catalog import open_catalog
from facetrace.core.errors import ImageDecodeError
from facetrace.core.types import (
    AnalyzedFace,
    AnalyzedImage,
    BoundingBox,
    Detection,
    Embedding,
    FaceQuality,
)
from facetrace.index.memory_backend import ExactMemoryIndex
from facetrace.ingest.runner import ImageBatch, IngestRunner, Tag, thumbnail_relpath
from facetrace.ingest.sources import SourceItem, iter_paths

DIM = 8
MODEL = "fake-model"


class FakeAnalyzer:
    """Bytes "BAD…" are unreadable, "NONE…" have no face, anything else has len(data) % 3 + 1 faces."""

    model_id = MODEL
    embedding_dim = DIM

    def analyze(self, data: bytes, source: str) -> AnalyzedImage:
        if data.startswith(b"BAD"):
            raise ImageDecodeError(source, "not an image")
        count = 0 if data.startswith(b"NONE") else len(data) % 3 + 1
        faces = []
        for n in range(count):
            seed = int.from_bytes(hashlib.sha256(data + bytes([n])).digest()[:4], "little")
            vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
            vector /= np.linalg.norm(vector)
            faces.append(
                AnalyzedFace(
                    detection=Detection(BoundingBox(n, n, n + 10, n + 10), np.zeros((5, 2), np.float32), 0.9),
                    quality=FaceQuality(0.8, 10, 1.0, 0.9, 0.0, 0.0),
                    embedding=Embedding(MODEL, vector),
                    thumbnail_jpeg=b"thumb" + bytes([n]),
                )
            )
        return AnalyzedImage(source, 100, 100, tuple(faces))

    def analyze_batch(self, items: Sequence[tuple[bytes, str]]) -> list[AnalyzedImage | Exception]:
        out: list[AnalyzedImage | Exception] = []
        for data, source in items:
            try:
                out.append(self.analyze(data, source))
            except ImageDecodeError as exc:
                out.append(exc)
        return out


def make_fake() -> FakeAnalyzer:
    return FakeAnalyzer()


def _photos(folder: Path, contents: Sequence[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, data in enumerate(contents):
        path = folder / f"p{n:03d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _runner(tmp_path: Path, workers: int = 1, batch_size: int = 4) -> tuple[IngestRunner, object, ExactMemoryIndex]:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    index = ExactMemoryIndex(MODEL, DIM)
    runner = IngestRunner(
        make_fake, catalog, index, tmp_path / "thumbs", model_id=MODEL, workers=workers, batch_size=batch_size
    )
    return runner, catalog, index


def test_ingest_counts_faces_errors_and_skips_duplicates(tmp_path: Path) -> None:
    contents = [b"img-%d" % n for n in range(10)] + [b"BAD file", b"NONE here", b"img-3"]
    _photos(tmp_path / "photos", contents)
    runner, catalog, index = _runner(tmp_path)
    summary = runner.run(iter_paths([tmp_path / "photos"]), "test")
    expected_faces = sum(len(c) % 3 + 1 for c in contents[:10])
    assert summary.images_seen == 13
    assert summary.images_added == 11  # ten with faces + the one without
    assert summary.images_skipped == 1  # the duplicate of img-3, caught within the run
    assert summary.errors == 1 and "not an image" in summary.error_messages[0]
    assert summary.faces_added == expected_faces
    assert len(index) == expected_faces == catalog.count_faces(MODEL)  # type: ignore[attr-defined]


def test_a_second_run_adds_nothing_and_a_grown_folder_adds_only_the_new(tmp_path: Path) -> None:
    _photos(tmp_path / "photos", [b"img-%d" % n for n in range(6)])
    runner, _catalog, index = _runner(tmp_path)
    first = runner.run(iter_paths([tmp_path / "photos"]), "first")
    again = runner.run(iter_paths([tmp_path / "photos"]), "again")
    assert again.images_added == 0 and again.images_skipped == 6 and again.faces_added == 0
    (tmp_path / "photos" / "new.jpg").write_bytes(b"img-new")
    grown = runner.run(iter_paths([tmp_path / "photos"]), "grown")
    assert grown.images_added == 1 and grown.images_skipped == 6
    assert len(index) == first.faces_added + grown.faces_added


def test_thumbnails_are_written_under_content_derived_names(tmp_path: Path) -> None:
    (path,) = _photos(tmp_path / "photos", [b"img-1"])
    runner, _catalog, _ = _runner(tmp_path)
    runner.run(iter_paths([path]), "thumbs")
    sha = hashlib.sha256(b"img-1").hexdigest()
    assert (tmp_path / "thumbs" / thumbnail_relpath(sha, 0)).read_bytes() == b"thumb\x00"


def test_provenance_reaches_the_catalog(tmp_path: Path) -> None:
    (path,) = _photos(tmp_path / "photos", [b"img-77"])
    runner, catalog, index = _runner(tmp_path)
    item = SourceItem(uri=str(path), source_page="https://page.example/", label="Person A", legal_basis="consent")
    runner.run([item], "provenance")
    records = catalog.faces_by_id(index.ids().tolist())  # type: ignore[attr-defined]
    assert records
    for record in records.values():
        assert record.source_page == "https://page.example/"
        assert record.label == "Person A"
        assert record.asset_uri == str(path)


@pytest.mark.parametrize("workers", [2])
def test_worker_processes_give_the_same_faces_as_one_process(tmp_path: Path, workers: int) -> None:
    contents = [b"img-%d" % n for n in range(12)] + [b"BAD"]
    _photos(tmp_path / "photos", contents)
    single, _, single_index = _runner(tmp_path / "one")
    multi, _, multi_index = _runner(tmp_path / "many", workers=workers, batch_size=3)
    a = single.run(iter_paths([tmp_path / "photos"]), "one")
    b = multi.run(iter_paths([tmp_path / "photos"]), "many")
    assert (a.faces_added, a.errors) == (b.faces_added, b.errors)
    q = np.random.default_rng(0).standard_normal((3, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(single_index.search(q, 5)[0], multi_index.search(q, 5)[0], atol=1e-6)


class ReversedAnalysis:
    """A BatchAnalysis that hands every batch back only at the end, last first (as a cluster may)."""

    def __init__(self) -> None:
        self.analyzer = FakeAnalyzer()

    def map(self, batches: Iterable[tuple[Tag, ImageBatch]]) -> Generator[tuple[Tag, list[AnalyzedImage | Exception]]]:
        done = [(tag, self.analyzer.analyze_batch(batch)) for tag, batch in batches]
        yield from reversed(done)


def test_results_may_come_back_in_any_order(tmp_path: Path) -> None:
    contents = [b"img-%d" % n for n in range(12)] + [b"BAD", b"img-5"]
    _photos(tmp_path / "photos", contents)
    single, _, single_index = _runner(tmp_path / "one")
    catalog = open_catalog(f"sqlite:///{tmp_path / 'other.db'}")
    index = ExactMemoryIndex(MODEL, DIM)
    other = IngestRunner(
        make_fake, catalog, index, tmp_path / "thumbs", model_id=MODEL, batch_size=3, analysis=ReversedAnalysis()
    )
    a = single.run(iter_paths([tmp_path / "photos"]), "one")
    b = other.run(iter_paths([tmp_path / "photos"]), "reversed")
    assert (a.images_added, a.faces_added, a.errors, a.images_skipped) == (
        b.images_added, b.faces_added, b.errors, b.images_skipped
    )  # fmt: skip
    q = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(single_index.search(q, 5)[0], index.search(q, 5)[0], atol=1e-6)
    assert other.run(iter_paths([tmp_path / "photos"]), "again").images_added == 0
    # The repeated photo was stored from its first occurrence, as in one process, though its copy came back first.
    uris = {record.asset_uri for record in catalog.faces_by_id(index.ids().tolist()).values()}
    assert str(tmp_path / "photos" / "p005.jpg") in uris
    assert str(tmp_path / "photos" / "p013.jpg") not in uris


class FirstFaceErased:
    """A SuppressionCheck that takes every image's first face for an erased person's."""

    def suppressed(self, vectors: np.ndarray) -> np.ndarray:
        flags = np.zeros(len(vectors), dtype=bool)
        flags[0] = True
        return flags

    def active(self) -> bool:
        return True


def test_the_label_goes_to_the_face_the_item_names_or_to_none(tmp_path: Path) -> None:
    # The fake's faces are all one size, so no face dominates: only face_index or face_box names the subject.
    three, two, one, other = _photos(tmp_path / "photos", [b"img-7", b"img-77x", b"img-77", b"img-88x"])
    runner, catalog, index = _runner(tmp_path)
    items = [
        SourceItem(uri=str(three), label="Ann", face_index=1),
        SourceItem(uri=str(two), label="Ben", face_box=BoundingBox(0.5, 0.5, 10.5, 10.5)),  # face 0 at (0,0)-(10,10)
        SourceItem(uri=str(one), label="Cy"),
        SourceItem(uri=str(other), label="Di", face_index=4),  # the photo has two faces: not found
    ]
    summary = runner.run(items, "attribution")
    assert summary.faces_added == 3 + 2 + 1 + 2 and summary.unattributed_labels == 1
    records = catalog.faces_by_id(index.ids().tolist())  # type: ignore[attr-defined]
    labelled = sorted((r.label, Path(r.asset_uri).name, r.box.x1) for r in records.values() if r.label)
    assert labelled == [("Ann", three.name, 1.0), ("Ben", two.name, 0.0), ("Cy", one.name, 0.0)]
    roles = sorted((Path(r.asset_uri).name, str(r.photo_role)) for r in records.values() if r.label is None)
    assert roles == sorted(
        [(three.name, "bystander"), (three.name, "bystander"), (two.name, "bystander")]
        + [(other.name, "unattributed")] * 2
    )
    assert catalog.runs()[0].stats["unattributed_labels"] == 1  # type: ignore[attr-defined]


def test_a_suppressed_subject_leaves_its_label_to_no_one(tmp_path: Path) -> None:
    (two,) = _photos(tmp_path / "photos", [b"img-77x"])
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    index = ExactMemoryIndex(MODEL, DIM)
    runner = IngestRunner(make_fake, catalog, index, tmp_path / "thumbs", model_id=MODEL, suppression=FirstFaceErased())
    summary = runner.run([SourceItem(uri=str(two), label="Ann", face_index=0)], "suppressed subject")
    assert summary.faces_added == 1 and summary.source_counts == {"suppressed_faces": 1}
    (record,) = catalog.faces_by_id(index.ids().tolist()).values()
    # The stored face is face 1 of the photo: a bystander of Ann's photo, never Ann.
    assert (record.box.x1, record.label, record.photo_label, record.photo_role) == (1.0, None, "Ann", "bystander")
