"""The search use case: 1:N search (each face of a probe, or several photos fused), and 1:1 comparison.

A search shows top_k candidates per probe face: candidates it must withhold (faces of erased people, index entries
without a catalog row) do not take places, the index is asked for more until top_k are shown or the gallery is
exhausted, and the result says how many were withheld and why. Each hit says whether it is the probe's own photo
(same sha256) or likely a copy of it (SameImage). Fusion checks that its photos show one person.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrace.core.errors import FaceSelectionError, InvalidRequestError, MixedProbesError, NoFaceError
from facetrace.core.ports import Catalog, DataGuard, FaceAnalyzer, SuppressionCheck, Unguarded, VectorIndex
from facetrace.core.types import (
    MAX_TOP_K,
    AnalyzedFace,
    AnalyzedImage,
    BoundingBox,
    Evidence,
    FaceQuality,
    FaceRecord,
    FloatArray,
    FusionCheck,
    ProbeResult,
    SearchHit,
)
from facetrace.core.vocabulary import SameImage, WithheldReason
from facetrace.search.calibration import ScoreCalibrator

log = logging.getLogger(__name__)
# Cosines of unit vectors lie in [-1, 1]; float16 re-ranking and rounding stay within this of it.
SIMILARITY_BOUND = 1.0 + 1e-3

# Fusion's one-person check: two photos' faces belong together at or above the similarity a stranger reaches with
# this false-match rate (the pack's calibration: 0.376 for the default pack, 0.367 before its table was measured with
# the face mesh). On LFW (bench/search_marks.py, docs/service.md; at 0.367, detector landmarks) 98.3% of 1,500
# same-person pairs reach it, 99.0% of 300 same-person triples pass the group rule (odd_ones_out), and 99.7% of
# triples with one stranger are refused, naming the stranger in 99.0%.
FUSION_FALSE_MATCH_RATE = 1e-3
# A hit is "likely the same photo" as the probe (a re-encoded, resized or slightly cropped copy) when its face is this
# similar to the probe's AND their crops' pixels correlate this well once lined up (vision/signatures.py). The
# similarity alone cannot tell: different LFW photos of one person reach 0.96, copies drop to 0.80. The correlation of
# 600 copies (JPEG q60 at 90%, 5% crop, q40 at 75%) is at least 0.9856; of 4,829 same-person pairs of different photos
# at most 0.9765 (two frames of one event); two pairs above it are LFW's own duplicates of one photo.
NEAR_DUPLICATE_SIMILARITY = 0.7
NEAR_DUPLICATE_CORRELATION = 0.981


def odd_ones_out(similarities: FloatArray, threshold: float) -> tuple[int, ...]:
    """The photos that do not belong with the rest: faces join a group when a pair of them reaches threshold (the
    groups are the connected components); every photo outside the largest group (ties: the group holding the
    earliest photo) is odd. Empty when all of them form one group."""
    count = similarities.shape[0]
    group = list(range(count))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i in range(count):
        for j in range(i + 1, count):
            if similarities[i, j] >= threshold:
                group[root(j)] = root(i)
    members: dict[int, list[int]] = {}
    for i in range(count):
        members.setdefault(root(i), []).append(i)
    kept = max(members.values(), key=lambda m: (len(m), -m[0]))
    return tuple(i for i in range(count) if i not in kept)


# A face as the same-photo check reads it: its thumbnail JPEG, and its box and landmarks in its photo's pixels.
FaceView = tuple[bytes, BoundingBox, FloatArray]
# How far two faces show the same pixels (vision/signatures.py): about 1 for copies of one photo, None if unknown.
PhotoCorrelation = Callable[[FaceView, FaceView], float | None]


def check_top_k(top_k: int) -> int:
    """top_k itself if it is a whole number from 1 to MAX_TOP_K, else a clear error (0 is not "the default")."""
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidRequestError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, not {top_k!r}")
    return int(top_k)


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
    face_index_a: int = 0  # the face compared in each photo (0-based, detector order)
    face_index_b: int = 0


def main_face(image: AnalyzedImage) -> AnalyzedFace:
    """The face a single-person photo is about: the largest, ties broken by detection score."""
    if not image.faces:
        raise NoFaceError(image.source)
    return max(image.faces, key=lambda f: (f.detection.box.area, f.detection.score))


def choose_face(image: AnalyzedImage, face_index: int | None) -> tuple[int, AnalyzedFace]:
    """(number, face): face number face_index (0-based, in detector order), or the main face when it is None."""
    if not image.faces:
        raise NoFaceError(image.source)
    if face_index is None:
        face = main_face(image)
        return image.faces.index(face), face
    if not 0 <= face_index < len(image.faces):
        raise FaceSelectionError(
            f"{image.source}: face {face_index} asked for, but the photo has {len(image.faces)} face(s) "
            f"numbered 0-{len(image.faces) - 1}"
        )
    return face_index, image.faces[face_index]


def fuse(faces: Sequence[AnalyzedFace]) -> FloatArray:
    """One template from several faces of one person: quality-weighted mean of unit vectors, renormalised."""
    vectors = np.vstack([f.embedding.vector for f in faces]).astype(np.float32)
    weights = np.asarray([max(f.quality.score, 0.05) for f in faces], dtype=np.float32)
    template = (weights[:, None] * vectors).sum(axis=0)
    norm = float(np.linalg.norm(template))
    fused: FloatArray = (template / norm if norm > 0 else template).astype(np.float32)
    return fused


@dataclass(frozen=True, eq=False)
class _Probe:
    """One query: its vector and quality, the sha256 of its photo(s), and the face(s) it was made from."""

    vector: FloatArray
    quality: FaceQuality
    sha256s: frozenset[str]
    faces: tuple[AnalyzedFace, ...]


@dataclass
class _Seen:
    """What one search has learned of the index's candidates so far: shown ones' rows, withheld ones' reasons."""

    records: dict[int, FaceRecord] = dataclasses.field(default_factory=dict)
    withheld: dict[int, WithheldReason] = dataclasses.field(default_factory=dict)


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
        photo_correlation: PhotoCorrelation | None = None,
    ) -> None:
        """guard is taken (shared) around the index and catalog reads of each search, never around analysis.
        photo_correlation (with thumbnails_dir) lets hits be marked as likely copies of the probe's photo."""
        self._guard = guard or Unguarded()
        self._suppression = suppression
        self._analyzer = analyzer
        self._catalog = catalog
        self._index = index
        self._calibrator = calibrator
        self._thumbnails_dir = thumbnails_dir
        self._photo_correlation = photo_correlation

    def search(self, data: bytes, source: str, *, top_k: int = 10, face_index: int | None = None) -> list[ProbeResult]:
        """Hits for every face in the probe photo, or only face number face_index (0-based, in detector order)."""
        return self.search_analyzed(
            self._analyzer.analyze(data, source),
            top_k=top_k,
            faces=None if face_index is None else [face_index],
            probe_sha256=hashlib.sha256(data).hexdigest(),
        )

    def search_analyzed(
        self,
        image: AnalyzedImage,
        *,
        top_k: int = 10,
        faces: Sequence[int] | None = None,
        probe_sha256: str | None = None,
    ) -> list[ProbeResult]:
        """search() for a probe the caller has analysed already (to keep its embedding, say): the faces numbered in
        faces (0-based, detector order; each once, in that order), or every face when None. probe_sha256, the
        photo's content hash, marks hits of the very same photo."""
        top_k = check_top_k(top_k)
        source = image.source
        if not image.faces:
            raise NoFaceError(source)
        if faces is not None and not faces:
            raise FaceSelectionError(f"{source}: no face chosen to search")
        numbers = list(dict.fromkeys(faces)) if faces is not None else range(len(image.faces))
        chosen = [choose_face(image, number) for number in numbers]
        sha256s = frozenset([probe_sha256] if probe_sha256 else [])
        probes = [_Probe(face.embedding.vector, face.quality, sha256s, (face,)) for _, face in chosen]
        found = self._hits(probes, top_k)
        return [
            ProbeResult(
                probe_source=source,
                probe_face_index=number,
                probe_box=face.detection.box,
                probe_quality=face.quality,
                hits=hits,
                withheld=withheld,
            )
            for (number, face), (hits, withheld) in zip(chosen, found, strict=True)
        ]

    def search_fused(
        self,
        probes: Sequence[tuple[bytes, str]],
        *,
        top_k: int = 10,
        faces: Sequence[int | None] | None = None,
        allow_mixed: bool = False,
    ) -> ProbeResult:
        """Several photos of one person fused into one template: in each photo face number faces[i] (0-based), or its
        main face where that is None. The photos must show one person (check_fusion); allow_mixed fuses them anyway,
        and the result still carries the check."""
        top_k = check_top_k(top_k)
        if not probes:
            raise InvalidRequestError("fusion needs at least one photo")
        choices = list(faces) if faces is not None else [None] * len(probes)
        if len(choices) != len(probes):
            raise InvalidRequestError(f"{len(choices)} face choices for {len(probes)} photos to fuse")
        chosen = [
            choose_face(self._analyzer.analyze(data, source), choice)
            for (data, source), choice in zip(probes, choices, strict=True)
        ]
        sources = [source for _, source in probes]
        fused_faces = [face for _, face in chosen]
        check = self.check_fusion(sources, fused_faces)
        if check is not None and not check.one_person and not allow_mixed:
            raise MixedProbesError(_mixed_message(sources, fused_faces, check), check.odd_sources)
        template = fuse(fused_faces)
        best = max(fused_faces, key=lambda f: f.quality.score)
        quality = dataclasses.replace(
            best.quality, flags=best.quality.flags if all(f.quality.flags for f in fused_faces) else ()
        )
        sha256s = frozenset(hashlib.sha256(data).hexdigest() for data, _ in probes)
        ((hits, withheld),) = self._hits([_Probe(template, quality, sha256s, tuple(fused_faces))], top_k)
        return ProbeResult(
            probe_source=" + ".join(sources),
            probe_face_index=None,
            probe_box=None,
            probe_quality=quality,
            hits=hits,
            withheld=withheld,
            fusion=check,
            fused_face_indexes=tuple(number for number, _ in chosen),
        )

    def check_fusion(self, sources: Sequence[str], faces: Sequence[AnalyzedFace]) -> FusionCheck | None:
        """Whether faces (one per photo of sources) show one person: pairs at or above the pack's similarity at
        FUSION_FALSE_MATCH_RATE belong together, and photos outside the largest group are odd (odd_ones_out). None
        when the pack has no calibration to take the threshold from."""
        if not self._calibrator.calibrated:
            return None
        threshold = self._calibrator.similarity_at(FUSION_FALSE_MATCH_RATE)
        vectors = np.vstack([f.embedding.vector for f in faces]).astype(np.float32)
        similarities = vectors @ vectors.T
        pairs = similarities[np.triu_indices(len(faces), k=1)]
        odd = odd_ones_out(similarities, threshold)
        return FusionCheck(
            threshold=threshold,
            false_match_rate=FUSION_FALSE_MATCH_RATE,
            lowest_similarity=float(pairs.min()) if pairs.size else 1.0,
            odd_sources=tuple(sources[i] for i in odd),
        )

    def compare(
        self, a: tuple[bytes, str], b: tuple[bytes, str], *, face_a: int | None = None, face_b: int | None = None
    ) -> Comparison:
        """1:1: face number face_a of photo a against face_b of b (0-based, detector order; None: the main face)."""
        number_a, first = choose_face(self._analyzer.analyze(*a), face_a)
        number_b, second = choose_face(self._analyzer.analyze(*b), face_b)
        similarity = float(np.dot(first.embedding.vector, second.embedding.vector))
        evidence = self._calibrator.evidence(
            similarity,
            1,
            probe_quality=first.quality.score,
            weak_probe=first.quality.is_weak,
            weak_candidate=second.quality.is_weak,
        )
        return Comparison(
            source_a=a[1],
            source_b=b[1],
            box_a=first.detection.box,
            box_b=second.detection.box,
            quality_a=first.quality,
            quality_b=second.quality,
            similarity=similarity,
            evidence=evidence,
            face_index_a=number_a,
            face_index_b=number_b,
        )

    # -- the index and catalog work (under the shared lock), then the same-photo marks (files, no lock) ---------------

    def _hits(
        self, probes: Sequence[_Probe], top_k: int
    ) -> list[tuple[tuple[SearchHit, ...], dict[WithheldReason, int]]]:
        queries = np.vstack([p.vector for p in probes]).astype(np.float32)
        with self._guard.reading():
            found = self._hits_locked(queries, [p.quality for p in probes], top_k)
        return [
            (self._mark_same_image(hits, probe), withheld)
            for (hits, withheld), probe in zip(found, probes, strict=True)
        ]

    def _hits_locked(
        self, queries: FloatArray, qualities: Sequence[FaceQuality], top_k: int
    ) -> list[tuple[tuple[SearchHit, ...], dict[WithheldReason, int]]]:
        gallery_size = len(self._index)
        if gallery_size == 0:
            return [((), {}) for _ in qualities]
        seen = _Seen()
        k = min(top_k, gallery_size)
        while True:
            scores, ids = self._index.search(queries, k)
            self._learn(ids, seen)
            rows = [
                self._walk(row_scores, row_ids, seen, top_k) for row_scores, row_ids in zip(scores, ids, strict=True)
            ]
            # Withheld candidates took places: ask for more until every row shows top_k or the gallery is exhausted.
            if k >= gallery_size or all(len(shown) >= top_k for shown, _ in rows):
                break
            k = min(gallery_size, 2 * k)
        missing = sum(reason is WithheldReason.NO_CATALOG_ROW for reason in seen.withheld.values())
        if missing:
            log.warning("%d index entries have no catalog row (run `facetrace check --repair`)", missing)
        impossible = sum(row.get(WithheldReason.IMPOSSIBLE_SIMILARITY, 0) for _, row in rows)
        if impossible:
            log.warning("the index gave %d impossible similarities (run `facetrace check --repair`)", impossible)
        results: list[tuple[tuple[SearchHit, ...], dict[WithheldReason, int]]] = []
        for (shown, withheld), quality in zip(rows, qualities, strict=True):
            hits: list[SearchHit] = []
            for similarity, record in shown:
                if self._thumbnails_dir is not None and record.thumbnail_path:
                    record = dataclasses.replace(
                        record, thumbnail_path=str(self._thumbnails_dir / record.thumbnail_path)
                    )
                evidence = self._calibrator.evidence(
                    similarity,
                    gallery_size,
                    probe_quality=quality.score,
                    weak_probe=quality.is_weak,
                    weak_candidate=bool(record.quality_flags),
                )
                hits.append(SearchHit(rank=len(hits) + 1, similarity=similarity, face=record, evidence=evidence))
            results.append((tuple(hits), withheld))
        return results

    def _learn(self, ids: np.ndarray, seen: _Seen) -> None:
        """Read the catalog rows of candidates not seen before; note those to withhold, and why."""
        new = sorted({int(i) for i in ids.ravel() if i >= 0} - seen.records.keys() - seen.withheld.keys())
        if not new:
            return
        records = self._catalog.faces_by_id(new)
        for face_id in new:
            if face_id not in records:
                seen.withheld[face_id] = WithheldReason.NO_CATALOG_ROW
        # The candidates' embeddings are read only while someone is erased (a search reads fewer rows otherwise).
        if self._suppression is not None and records and self._suppression.active():
            stored_ids, vectors = self._catalog.embeddings_by_id(sorted(records))
            flags = self._suppression.suppressed(vectors)
            for face_id in stored_ids[flags].tolist():
                # An erased person's face that got in before the erasure finished: never shown.
                records.pop(int(face_id), None)
                seen.withheld[int(face_id)] = WithheldReason.ERASED_PERSON
        seen.records.update(records)

    @staticmethod
    def _walk(
        scores: np.ndarray, ids: np.ndarray, seen: _Seen, top_k: int
    ) -> tuple[list[tuple[float, FaceRecord]], dict[WithheldReason, int]]:
        """One query's ranking: the first top_k shown candidates, and the withheld ones ranked among them."""
        shown: list[tuple[float, FaceRecord]] = []
        withheld: Counter[WithheldReason] = Counter()
        for score, face_id in zip(scores.tolist(), ids.tolist(), strict=True):
            if len(shown) >= top_k:
                break
            if face_id < 0:
                continue
            reason = seen.withheld.get(int(face_id))
            if reason is None and not -SIMILARITY_BOUND <= score <= SIMILARITY_BOUND:  # NaN fails both sides too
                reason = WithheldReason.IMPOSSIBLE_SIMILARITY
            if reason is not None:
                withheld[reason] += 1
                continue
            shown.append((float(score), seen.records[int(face_id)]))
        return shown, dict(withheld)

    def _mark_same_image(self, hits: tuple[SearchHit, ...], probe: _Probe) -> tuple[SearchHit, ...]:
        return tuple(
            hit
            if (same := self._same_image(hit, probe)) is SameImage.NONE
            else dataclasses.replace(hit, same_image=same)
            for hit in hits
        )

    def _same_image(self, hit: SearchHit, probe: _Probe) -> SameImage:
        """IDENTICAL for the probe's own file (its sha256); NEAR_DUPLICATE when the face is similar enough and its
        thumbnail's pixels match one of the probe's faces' (a re-encoded, resized or slightly cropped copy)."""
        if hit.face.asset_sha256 in probe.sha256s:
            return SameImage.IDENTICAL
        if (
            hit.similarity < NEAR_DUPLICATE_SIMILARITY
            or self._photo_correlation is None
            or self._thumbnails_dir is None
            or not hit.face.thumbnail_path
        ):
            return SameImage.NONE
        try:
            thumbnail = Path(hit.face.thumbnail_path).read_bytes()
        except OSError:  # erased since, or the thumbnails folder is not readable: no mark rather than a guess
            return SameImage.NONE
        candidate: FaceView = (thumbnail, hit.face.box, hit.face.landmarks)
        for face in probe.faces:
            view: FaceView = (face.thumbnail_jpeg, face.detection.box, face.detection.landmarks)
            correlation = self._photo_correlation(view, candidate)
            if correlation is not None and correlation >= NEAR_DUPLICATE_CORRELATION:
                return SameImage.NEAR_DUPLICATE
        return SameImage.NONE


def _mixed_message(sources: Sequence[str], faces: Sequence[AnalyzedFace], check: FusionCheck) -> str:
    """Why a fusion is refused, naming each odd photo and how close it came to the others."""
    kept = [i for i, source in enumerate(sources) if source not in check.odd_sources]
    parts = []
    for i, source in enumerate(sources):
        if source not in check.odd_sources:
            continue
        best = max(float(np.dot(faces[i].embedding.vector, faces[j].embedding.vector)) for j in kept)
        parts.append(f"{source} (best similarity {best:.3f} to the others)")
    return (
        f"the photos to fuse do not show one person: {'; '.join(parts)} does not match "
        f"{' + '.join(sources[i] for i in kept)} at the fusion threshold {check.threshold:.3f} (the similarity a "
        f"stranger reaches with a false-match rate of {check.false_match_rate:g}). Choose another face with PATH#N "
        "or --face, leave the odd photo out, or fuse anyway with --allow-mixed-people (allow_mixed=True)"
    )
