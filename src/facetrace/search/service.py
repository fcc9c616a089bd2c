"""The search use case: 1:N search (each face of a probe, or several photos fused), and 1:1 comparison."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrace.core.errors import FaceSelectionError, NoFaceError
from facetrace.core.ports import Catalog, DataGuard, FaceAnalyzer, SuppressionCheck, Unguarded, VectorIndex
from facetrace.core.types import (
    AnalyzedFace,
    AnalyzedImage,
    BoundingBox,
    Evidence,
    FaceQuality,
    FloatArray,
    ProbeResult,
    SearchHit,
)
from facetrace.search.calibration import ScoreCalibrator

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Comparison:
    """A 1:1 comparison of the chosen face of two images."""

    source_a: str
    source_b: str
    box_a: BoundingBox
    box_b: BoundingBox
    quality_a: FaceQuality
    quality_b: FaceQuality
    similarity: float
    evidence: Evidence  # false-match rate of one comparison (gallery size 1)


def main_face(image: AnalyzedImage) -> AnalyzedFace:
    """The face a single-person photo is about: the largest, ties broken by detection score."""
    if not image.faces:
        raise NoFaceError(image.source)
    return max(image.faces, key=lambda f: (f.detection.box.area, f.detection.score))


def fuse(faces: Sequence[AnalyzedFace]) -> FloatArray:
    """One template from several faces of one person: quality-weighted mean of unit vectors, renormalised."""
    vectors = np.vstack([f.embedding.vector for f in faces]).astype(np.float32)
    weights = np.asarray([max(f.quality.score, 0.05) for f in faces], dtype=np.float32)
    template = (weights[:, None] * vectors).sum(axis=0)
    norm = float(np.linalg.norm(template))
    fused: FloatArray = (template / norm if norm > 0 else template).astype(np.float32)
    return fused


class SearchService:
    def __init__(
        self,
        analyzer: FaceAnalyzer,
        catalog: Catalog,
        index: VectorIndex,
        calibrator: ScoreCalibrator,
        thumbnails_dir: Path | None = None,
        suppression: SuppressionCheck | None = None,
        guard: DataGuard | None = None,
    ) -> None:
        """guard is taken (shared) around the index and catalog reads of each search, never around analysis."""
        self._guard = guard or Unguarded()
        self._suppression = suppression
        self._analyzer = analyzer
        self._catalog = catalog
        self._index = index
        self._calibrator = calibrator
        self._thumbnails_dir = thumbnails_dir

    def search(self, data: bytes, source: str, *, top_k: int = 10, face_index: int | None = None) -> list[ProbeResult]:
        """Hits for every face in the probe photo, or only face number face_index (0-based, in detector order)."""
        return self.search_analyzed(self._analyzer.analyze(data, source), top_k=top_k, face_index=face_index)

    def search_analyzed(
        self, image: AnalyzedImage, *, top_k: int = 10, face_index: int | None = None
    ) -> list[ProbeResult]:
        """search() for a probe the caller has analysed already (to keep its embedding, say)."""
        source = image.source
        if not image.faces:
            raise NoFaceError(source)
        if face_index is not None:
            if not 0 <= face_index < len(image.faces):
                raise FaceSelectionError(
                    f"{source}: face {face_index} asked for, but the photo has {len(image.faces)} face(s) "
                    f"numbered 0-{len(image.faces) - 1}"
                )
            chosen = [(face_index, image.faces[face_index])]
        else:
            chosen = list(enumerate(image.faces))
        queries = np.vstack([f.embedding.vector for _, f in chosen]).astype(np.float32)
        hits = self._hits(queries, [f.quality for _, f in chosen], top_k)
        return [
            ProbeResult(
                probe_source=source,
                probe_face_index=number,
                probe_box=face.detection.box,
                probe_quality=face.quality,
                hits=face_hits,
            )
            for (number, face), face_hits in zip(chosen, hits, strict=True)
        ]

    def search_fused(self, probes: Sequence[tuple[bytes, str]], *, top_k: int = 10) -> ProbeResult:
        """Several photos of one person fused into one template (the main face of each photo)."""
        faces = [main_face(self._analyzer.analyze(data, source)) for data, source in probes]
        template = fuse(faces)
        best = max(faces, key=lambda f: f.quality.score)
        quality = dataclasses.replace(
            best.quality, flags=best.quality.flags if all(f.quality.flags for f in faces) else ()
        )
        (hits,) = self._hits(template[None, :], [quality], top_k)
        return ProbeResult(
            probe_source=" + ".join(source for _, source in probes),
            probe_face_index=None,
            probe_box=None,
            probe_quality=quality,
            hits=hits,
        )

    def compare(self, a: tuple[bytes, str], b: tuple[bytes, str]) -> Comparison:
        face_a = main_face(self._analyzer.analyze(*a))
        face_b = main_face(self._analyzer.analyze(*b))
        similarity = float(np.dot(face_a.embedding.vector, face_b.embedding.vector))
        evidence = self._calibrator.evidence(
            similarity,
            1,
            probe_quality=face_a.quality.score,
            weak_probe=face_a.quality.is_weak,
            weak_candidate=face_b.quality.is_weak,
        )
        return Comparison(
            source_a=a[1],
            source_b=b[1],
            box_a=face_a.detection.box,
            box_b=face_b.detection.box,
            quality_a=face_a.quality,
            quality_b=face_b.quality,
            similarity=similarity,
            evidence=evidence,
        )

    def _hits(self, queries: FloatArray, qualities: Sequence[FaceQuality], top_k: int) -> list[tuple[SearchHit, ...]]:
        with self._guard.reading():
            return self._hits_locked(queries, qualities, top_k)

    def _hits_locked(
        self, queries: FloatArray, qualities: Sequence[FaceQuality], top_k: int
    ) -> list[tuple[SearchHit, ...]]:
        gallery_size = len(self._index)
        if gallery_size == 0:
            return [() for _ in qualities]
        scores, ids = self._index.search(queries, min(top_k, gallery_size))
        wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
        records = self._catalog.faces_by_id(wanted)
        missing = set(wanted) - set(records)
        if missing:
            log.warning("%d index entries have no catalog row (run `facetrace check --repair`)", len(missing))
        if self._suppression is not None and records:
            stored_ids, vectors = self._catalog.embeddings_by_id(sorted(records))
            flags = self._suppression.suppressed(vectors)
            for face_id in stored_ids[flags].tolist():
                # An erased person's face that got in before the erasure finished: never shown.
                records.pop(int(face_id), None)
        results: list[tuple[SearchHit, ...]] = []
        for row_scores, row_ids, quality in zip(scores, ids, qualities, strict=True):
            hits: list[SearchHit] = []
            for score, face_id in zip(row_scores, row_ids, strict=True):
                record = records.get(int(face_id))
                if record is None:
                    continue
                if self._thumbnails_dir is not None and record.thumbnail_path:
                    record = dataclasses.replace(
                        record, thumbnail_path=str(self._thumbnails_dir / record.thumbnail_path)
                    )
                similarity = float(score)
                evidence = self._calibrator.evidence(
                    similarity,
                    gallery_size,
                    probe_quality=quality.score,
                    weak_probe=quality.is_weak,
                    weak_candidate=bool(record.quality_flags),
                )
                hits.append(SearchHit(rank=len(hits) + 1, similarity=similarity, face=record, evidence=evidence))
            results.append(tuple(hits))
        return results
