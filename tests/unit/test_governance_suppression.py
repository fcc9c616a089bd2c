"""The ingest runner's suppression hook, with the fake analyzer: suppressed faces are never written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from test_ingest_runner import DIM, MODEL, FakeAnalyzer, _photos, make_fake

from facetrace.catalog import open_catalog
from facetrace.core.ports import BoolArray
from facetrace.core.types import FloatArray
from facetrace.index.memory_backend import ExactMemoryIndex
from facetrace.ingest.runner import IngestRunner, thumbnail_relpath
from facetrace.ingest.sources import iter_paths


class SuppressVectors:
    def __init__(self, vectors: FloatArray) -> None:
        self.vectors = vectors

    def suppressed(self, vectors: FloatArray) -> BoolArray:
        flags: BoolArray = (vectors @ self.vectors.T).max(axis=1) > 0.999
        return flags

    def active(self) -> bool:
        return len(self.vectors) > 0


def test_suppressed_faces_are_not_stored_nor_thumbnailed(tmp_path: Path) -> None:
    # b"img-2" has 3 faces (len 5 % 3 + 1), b"img-10" has 1: suppress one face of the first and the only one of
    # the second.
    paths = _photos(tmp_path / "photos", [b"img-2", b"img-10", b"img-0"])
    analyzer = FakeAnalyzer()
    three = analyzer.analyze(b"img-2", "x").faces
    one = analyzer.analyze(b"img-10", "y").faces
    assert (len(three), len(one)) == (3, 1)
    erased = np.vstack([three[1].embedding.vector, one[0].embedding.vector])
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    index = ExactMemoryIndex(MODEL, DIM)
    runner = IngestRunner(
        make_fake, catalog, index, tmp_path / "thumbs", model_id=MODEL, suppression=SuppressVectors(erased)
    )
    summary = runner.run(iter_paths([tmp_path / "photos"]), "test")
    assert summary.source_counts == {"suppressed_faces": 2, "suppressed_images": 1}
    assert summary.images_added == 2
    assert summary.faces_added == len(index) == catalog.count_faces(MODEL) == 2 + 3  # img-2 keeps 2, img-0 has 3
    digest = hashlib.sha256(paths[0].read_bytes()).hexdigest()
    assert not (tmp_path / "thumbs" / thumbnail_relpath(digest, 1)).exists()
    assert (tmp_path / "thumbs" / thumbnail_relpath(digest, 2)).exists()
    stored = catalog.embeddings_by_id(index.ids().tolist())[1]
    assert not np.any((stored @ erased.T) > 0.999)
    catalog.close()
