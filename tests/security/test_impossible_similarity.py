"""A damaged index entry is never a lead: a similarity no two unit vectors can have is withheld (search/service.py;
docs/security.md). Once a file damaged on disk answered with 3.2e35, called a "strong lead"."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facetrace.core.vocabulary import WithheldReason
from facetrace.engine import open_engine


def test_a_similarity_no_two_faces_can_have_is_never_a_lead(fr_examples: Path, tmp_path: Path) -> None:
    train = fr_examples / "examples" / "knn_examples" / "train"
    probe = fr_examples / "examples" / "knn_examples" / "test" / "obama1.jpg"
    with open_engine(tmp_path / "data", workers=1) as engine:
        engine.ingest.run([train])
        (before,) = engine.search.file(probe, top_k=3)
        damaged = before.hits[0].face.face_id
        _, vectors = engine.catalog.embeddings_by_id([damaged], engine.model_id)
        with engine.lock.writing("a test's damage"):  # what a damaged file would hold: a vector of huge norm
            engine.index.stored.add(np.asarray([damaged], dtype=np.int64), (vectors * 1e30).astype(np.float32))
        (result,) = engine.search.file(probe, top_k=3)
        assert len(result.hits) == 3 and damaged not in {hit.face.face_id for hit in result.hits}
        assert result.withheld == {WithheldReason.IMPOSSIBLE_SIMILARITY: 1}
        assert all(-1.0 <= hit.similarity <= 1.0 + 1e-3 for hit in result.hits)
