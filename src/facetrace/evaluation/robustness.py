"""Robustness benchmark: verification and identification on LFW under controlled degradations, and whether the
quality flags mark the faces that produce high-scoring impostors.

Protocol (deterministic, from the pairs CSV alone):
- the first `folds` folds of the pairs file, `pairs_per_fold` pairs of each (half same-person, half different);
- realistic setting: the second photo of each pair is degraded (a degraded probe), the first stays clean (a clean
  gallery photo); a degraded photo without a detected face scores -1 (a failure to detect);
- accuracy: each fold is scored at the threshold fitted on the CLEAN scores of the other folds, as a deployment
  would (its threshold does not know that a probe is degraded);
- TAR at the pack's calibrated 1e-3 FMR threshold (read from the pack's impostor table over millions of LFW pairs);
- rank-1: each degraded same-person probe searched against every clean photo of the chosen folds but its own;
- impostors: every degraded probe against every clean photo of another person (hundreds of thousands of pairs per
  condition); those scoring at or above the 1e-3 threshold are the dangerous ones, and the report gives the share
  of them in which the probe or the gallery face carries a quality flag;
- profile views: pairs of the selected folds (all of their pairs, clean) in which one face's estimated |yaw| is at
  least PROFILE_MIN_YAW_DEG, a condition of its own.
Clean photos are analysed once and cached (vectors, landmarks, quality) so reruns only pay for the degraded copies.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from facetrace.core.ports import FaceAnalyzer
from facetrace.core.types import AnalyzedImage, FloatArray, ScoreCalibration
from facetrace.evaluation import metrics
from facetrace.evaluation.datasets import VerificationPair, require_files
from facetrace.evaluation.embeddings import ProgressCallback, select_subject_face

logger = logging.getLogger(__name__)

DEFAULT_FOLDS = 2
# 200 pairs per fold (100 same, 100 different) x 2 folds: ~400 degraded probes per condition. A probe costs 40 ms on
# an idle 2-core machine and 100-130 ms while five other jobs share it, so the 30 condition-strengths take 8-25 min.
DEFAULT_PAIRS_PER_FOLD = 200
CALIBRATED_FMR = 1e-3
# A face turned this far (estimated from the landmarks) counts as a profile view: the quality module's bound. 3.5% of
# the 1,583 photos of LFW's first two folds are beyond it (at 30 degrees a third of the pairs would be "profile").
PROFILE_MIN_YAW_DEG = 45.0  # = vision.quality.MAX_FRONTAL_YAW_DEG (not imported: this module loads without OpenCV)
FAILED_SCORE = -1.0
CLEAN = "clean"
PROFILE = "profile_views"
# Bump when what is cached changes meaning (e.g. the quality flags): old caches are then ignored, not misread.
_CLEAN_CACHE_VERSION = "2"


class ArrayAnalyzer(FaceAnalyzer, Protocol):
    """A FaceAnalyzer that also takes already-decoded (degraded) images."""

    def analyze_array(self, bgr: npt.NDArray[np.uint8], source: str) -> AnalyzedImage: ...


@dataclass(frozen=True, eq=False)
class Observations:
    """The subject face of each image: unit vector (zeros without a face), landmarks, quality score and flags."""

    vectors: FloatArray  # (n, dim)
    has_face: npt.NDArray[np.bool_]
    landmarks: FloatArray  # (n, 5, 2), zeros without a face
    quality: npt.NDArray[np.float64]
    yaw: npt.NDArray[np.float64]
    flags: tuple[tuple[str, ...], ...]

    @property
    def flagged(self) -> npt.NDArray[np.bool_]:
        return np.array([bool(f) for f in self.flags], dtype=np.bool_) & self.has_face

    def take(self, rows: npt.NDArray[np.int64]) -> Observations:
        """The observations of these rows, in this order."""
        return Observations(
            vectors=self.vectors[rows],
            has_face=self.has_face[rows],
            landmarks=self.landmarks[rows],
            quality=self.quality[rows],
            yaw=self.yaw[rows],
            flags=tuple(self.flags[row] for row in rows),
        )


def _observe(images: Sequence[AnalyzedImage | Exception], dim: int) -> Observations:
    count = len(images)
    vectors = np.zeros((count, dim), dtype=np.float32)
    has_face = np.zeros(count, dtype=np.bool_)
    landmarks = np.zeros((count, 5, 2), dtype=np.float32)
    quality = np.zeros(count, dtype=np.float64)
    yaw = np.zeros(count, dtype=np.float64)
    flags: list[tuple[str, ...]] = []
    for row, image in enumerate(images):
        face = None if isinstance(image, Exception) else select_subject_face(image)
        if face is None:
            flags.append(())
            continue
        vector = np.asarray(face.embedding.vector, dtype=np.float32).reshape(-1)
        vectors[row] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        has_face[row] = True
        landmarks[row] = np.asarray(face.detection.landmarks, dtype=np.float32).reshape(5, 2)
        quality[row] = face.quality.score
        yaw[row] = face.quality.yaw_deg
        flags.append(tuple(face.quality.flags))
    return Observations(vectors, has_face, landmarks, quality, yaw, tuple(flags))


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)


def _save_npz_atomic(path: Path, **arrays: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


class DegradedCache:
    """The observations of one condition's degraded probes, one .npz per analyzer variant, condition and strength.

    The key covers everything that decides the degraded images (probe paths, seed) so a different subset is never
    misread; evaluate_robustness writes it and the quality calibration (evaluation/quality_calibration.py) reads it.
    """

    def __init__(
        self, cache_dir: Path | str, cache_key: str, condition: str, strength: float, seed: int, probes: Sequence[str]
    ) -> None:
        import hashlib

        digest = hashlib.sha256("\n".join(probes).encode("utf-8")).hexdigest()[:16]
        name = f"robustness-degraded-{_safe_name(cache_key)}-{_safe_name(condition)}={strength:g}-seed{seed}-{digest}"
        self.path = Path(cache_dir) / f"{name}.npz"
        self.key = f"{cache_key}/{condition}={strength:g}/seed={seed}/{digest}/v{_CLEAN_CACHE_VERSION}"

    def load(self) -> Observations | None:
        if not self.path.is_file():
            return None
        with np.load(self.path, allow_pickle=False) as data:
            if str(data["cache_key"]) != self.key:
                logger.warning("ignoring %s: made for %s, not %s", self.path, data["cache_key"], self.key)
                return None
            return Observations(
                vectors=np.asarray(data["vectors"], dtype=np.float32),
                has_face=np.asarray(data["has_face"], dtype=np.bool_),
                landmarks=np.asarray(data["landmarks"], dtype=np.float32),
                quality=np.asarray(data["quality"], dtype=np.float64),
                yaw=np.asarray(data["yaw"], dtype=np.float64),
                flags=tuple(tuple(f for f in str(fl).split(",") if f) for fl in data["flags"].tolist()),
            )

    def save(self, observations: Observations) -> None:
        _save_npz_atomic(
            self.path,
            cache_key=np.array(self.key),
            vectors=observations.vectors,
            has_face=observations.has_face,
            landmarks=observations.landmarks,
            quality=observations.quality,
            yaw=observations.yaw,
            flags=np.array([",".join(f) for f in observations.flags], dtype=np.str_),
        )


class CleanCache:
    """Clean-photo observations keyed by resolved path, one .npz per analyzer variant (atomic writes)."""

    def __init__(self, cache_dir: Path | str, cache_key: str) -> None:
        name = "robustness-clean-" + _safe_name(cache_key) + ".npz"
        self.path = Path(cache_dir) / name
        self.key = f"{cache_key}/v{_CLEAN_CACHE_VERSION}"

    def load(self) -> dict[str, tuple[Any, ...]]:
        if not self.path.is_file():
            return {}
        with np.load(self.path, allow_pickle=False) as data:
            if str(data["cache_key"]) != self.key:
                logger.warning("ignoring %s: made for %s, not %s", self.path, data["cache_key"], self.key)
                return {}
            return {
                str(key): (vector, bool(found), marks, float(q), float(y), tuple(f for f in str(fl).split(",") if f))
                for key, vector, found, marks, q, y, fl in zip(
                    data["keys"].tolist(),
                    np.asarray(data["vectors"], dtype=np.float32),
                    data["has_face"].tolist(),
                    np.asarray(data["landmarks"], dtype=np.float32),
                    data["quality"].tolist(),
                    data["yaw"].tolist(),
                    data["flags"].tolist(),
                    strict=True,
                )
            }

    def save(self, keys: Sequence[str], observations: Observations) -> None:
        _save_npz_atomic(
            self.path,
            cache_key=np.array(self.key),
            keys=np.array(list(keys), dtype=np.str_),
            vectors=observations.vectors,
            has_face=observations.has_face,
            landmarks=observations.landmarks,
            quality=observations.quality,
            yaw=observations.yaw,
            flags=np.array([",".join(f) for f in observations.flags], dtype=np.str_),
        )


def _from_entries(entries: Sequence[tuple[Any, ...]], dim: int) -> Observations:
    """Observations from per-photo entries (vector, has_face, landmarks, quality, yaw, flags), as the cache keeps."""
    return Observations(
        vectors=np.stack([e[0] for e in entries]).astype(np.float32) if entries else np.zeros((0, dim), np.float32),
        has_face=np.array([e[1] for e in entries], dtype=np.bool_),
        landmarks=np.stack([e[2] for e in entries]).astype(np.float32) if entries else np.zeros((0, 5, 2), np.float32),
        quality=np.array([e[3] for e in entries], dtype=np.float64),
        yaw=np.array([e[4] for e in entries], dtype=np.float64),
        flags=tuple(e[5] for e in entries),
    )


def observe_clean(
    analyzer: FaceAnalyzer,
    root: Path,
    paths: Sequence[str],
    *,
    cache_dir: Path | str | None,
    cache_key: str,
    progress: ProgressCallback | None = None,
) -> Observations:
    """Analyse each clean photo once (cached): its subject face's vector, landmarks, quality."""
    keys = [str((root / path).resolve()) for path in paths]
    cache = CleanCache(cache_dir, cache_key) if cache_dir is not None else None
    stored = cache.load() if cache is not None else {}
    missing = [row for row, key in enumerate(keys) if key not in stored]
    fresh: dict[str, tuple[Any, ...]] = {}
    batch = 32
    for start in range(0, len(missing), batch):
        rows = missing[start : start + batch]
        results = analyzer.analyze_batch([((root / paths[row]).read_bytes(), paths[row]) for row in rows])
        observed = _observe(results, analyzer.embedding_dim)
        for offset, row in enumerate(rows):
            fresh[keys[row]] = (
                observed.vectors[offset],
                bool(observed.has_face[offset]),
                observed.landmarks[offset],
                float(observed.quality[offset]),
                float(observed.yaw[offset]),
                observed.flags[offset],
            )
        if progress is not None:
            progress(min(start + batch, len(missing)), len(missing))
    entries = {**stored, **fresh}
    observations = _from_entries([entries[key] for key in keys], analyzer.embedding_dim)
    if cache is not None and fresh:
        all_keys = list(entries)
        cache.save(all_keys, _from_entries([entries[key] for key in all_keys], analyzer.embedding_dim))
    return observations


# -- the report -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionResult:
    """One condition at one strength. Rates are fractions; None where the subset has nothing to measure."""

    condition: str
    strength: float
    unit: str
    pairs: int
    accuracy: float
    tar_at_fmr: float  # genuine pairs scoring >= the calibrated CALIBRATED_FMR threshold
    failure_to_detect: float  # degraded probes without a detected face
    probes_flagged: float  # degraded probes (with a face) carrying a quality flag
    rank1: float | None
    impostor_pairs: int
    impostor_fmr: float  # share of cross impostor pairs at or above the threshold (the calibration says 1e-3)
    high_impostors: int
    high_impostors_flagged: int
    flagged_impostor_pairs: int  # impostor pairs in which the probe or the gallery face carries a flag
    # Both sides degraded alike (a gallery gathered through the same bad camera or pipeline): the degraded probes of
    # different people against each other.
    alike_impostor_pairs: int = 0
    alike_high_impostors: int = 0
    alike_high_impostors_flagged: int = 0
    alike_flagged_impostor_pairs: int = 0

    @property
    def label(self) -> str:
        return self.condition if self.condition in (CLEAN, PROFILE) else f"{self.condition} {self.strength:g}"


@dataclass(frozen=True)
class RobustnessReport:
    model_id: str
    pairs_csv: str
    folds: tuple[int, ...]
    pairs: int
    threshold: float
    threshold_fmr: float
    clean_photos: int
    clean_photos_flagged: float  # share of clean subset photos (with a face) carrying a quality flag
    clean_flag_counts: dict[str, int]
    results: tuple[ConditionResult, ...]
    high_impostors: int  # over all degraded conditions
    high_impostors_flagged: int
    impostor_pairs: int
    flagged_impostor_pairs: int
    alike_high_impostors: int
    alike_high_impostors_flagged: int
    alike_impostor_pairs: int
    alike_flagged_impostor_pairs: int
    seconds: float
    seed: int
    notes: tuple[str, ...] = field(default=())

    @property
    def flagged_share(self) -> float | None:
        return self.high_impostors_flagged / self.high_impostors if self.high_impostors else None

    @property
    def fmr_flagged(self) -> float | None:
        """The false-match rate at the threshold over impostor pairs involving a flagged face (degraded probes)."""
        pairs = self.flagged_impostor_pairs
        return self.high_impostors_flagged / pairs if pairs else None

    @property
    def fmr_unflagged(self) -> float | None:
        pairs = self.impostor_pairs - self.flagged_impostor_pairs
        return (self.high_impostors - self.high_impostors_flagged) / pairs if pairs else None

    @property
    def alike_flagged_share(self) -> float | None:
        high = self.alike_high_impostors
        return self.alike_high_impostors_flagged / high if high else None

    @property
    def alike_fmr_flagged(self) -> float | None:
        pairs = self.alike_flagged_impostor_pairs
        return self.alike_high_impostors_flagged / pairs if pairs else None

    @property
    def alike_fmr_unflagged(self) -> float | None:
        pairs = self.alike_impostor_pairs - self.alike_flagged_impostor_pairs
        return (self.alike_high_impostors - self.alike_high_impostors_flagged) / pairs if pairs else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["flagged_share_of_high_impostors"] = self.flagged_share
        data["alike_flagged_share_of_high_impostors"] = self.alike_flagged_share
        data["alike_fmr_flagged"] = self.alike_fmr_flagged
        data["alike_fmr_unflagged"] = self.alike_fmr_unflagged
        data["fmr_flagged"] = self.fmr_flagged
        data["fmr_unflagged"] = self.fmr_unflagged
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """A Markdown table of accuracy, one row per condition and strength."""
        lines = [
            "| condition | strength | pairs | accuracy % | TAR@FMR1e-3 % | failed to detect % | rank-1 % | "
            "probes flagged % |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in self.results:
            rank1 = "" if row.rank1 is None else f"{row.rank1 * 100:.1f}"
            lines.append(
                f"| {row.condition} | {_strength(row)} | {row.pairs} | {row.accuracy * 100:.1f} | "
                f"{row.tar_at_fmr * 100:.1f} | {row.failure_to_detect * 100:.1f} | {rank1} | "
                f"{row.probes_flagged * 100:.1f} |"
            )
        return "\n".join(lines)

    def impostor_table(self) -> str:
        """A Markdown table of impostors at or above the threshold and how many of them the quality flags mark."""
        lines = [
            "| condition | strength | vs clean: FMR | vs clean: impostors >= threshold (flagged) | "
            "alike: FMR | alike: impostors >= threshold (flagged) |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.results:
            alike_fmr = row.alike_high_impostors / row.alike_impostor_pairs if row.alike_impostor_pairs else 0.0
            lines.append(
                f"| {row.condition} | {_strength(row)} | {row.impostor_fmr:.1e} | "
                f"{row.high_impostors} ({row.high_impostors_flagged}) | {alike_fmr:.1e} | "
                f"{row.alike_high_impostors} ({row.alike_high_impostors_flagged}) |"
            )
        return "\n".join(lines)

    def summary(self) -> str:
        share = self.flagged_share
        alike_share = self.alike_flagged_share
        lines = [
            f"model {self.model_id}: {self.pairs} pairs of folds {','.join(map(str, self.folds))} of {self.pairs_csv}; "
            f"threshold {self.threshold:.4f} (calibrated FMR {self.threshold_fmr:g})",
            self.table(),
            "",
            self.impostor_table(),
            "",
            f"degraded probe vs clean photo of another person, scoring >= the threshold: {self.high_impostors} of "
            f"{self.impostor_pairs:,} pairs; with a flagged probe or gallery face: {self.high_impostors_flagged}"
            + (f" ({share * 100:.1f}%)" if share is not None else ""),
            f"degraded alike, both sides, scoring >= the threshold: {self.alike_high_impostors} of "
            f"{self.alike_impostor_pairs:,} pairs; with a flagged face: {self.alike_high_impostors_flagged}"
            + (f" ({alike_share * 100:.1f}%)" if alike_share is not None else ""),
            f"false-match rate at the threshold: {_rate(self.fmr_flagged)} over the "
            f"{self.flagged_impostor_pairs:,} impostor pairs with a flagged face, {_rate(self.fmr_unflagged)} over the "
            f"{self.impostor_pairs - self.flagged_impostor_pairs:,} without (degraded probe vs clean photo); "
            f"{_rate(self.alike_fmr_flagged)} over the {self.alike_flagged_impostor_pairs:,} with a flagged face, "
            f"{_rate(self.alike_fmr_unflagged)} over the "
            f"{self.alike_impostor_pairs - self.alike_flagged_impostor_pairs:,} without (degraded alike)",
            f"clean photos flagged: {self.clean_photos_flagged * 100:.1f}% of {self.clean_photos} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.clean_flag_counts.items())) or 'none'})",
            f"took {self.seconds:.0f} s",
        ]
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def _strength(row: ConditionResult) -> str:
    return "" if row.condition in (CLEAN, PROFILE) else f"{row.strength:g} {row.unit}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2e}"


# -- the benchmark ---------------------------------------------------------------------------------------------------


def select_pairs(
    pairs: Sequence[VerificationPair], folds: int, pairs_per_fold: int
) -> tuple[tuple[VerificationPair, ...], tuple[VerificationPair, ...]]:
    """(benchmark subset, every pair of the chosen folds): the first folds in order, half same and half different."""
    fold_ids = sorted({pair.fold for pair in pairs})[:folds]
    in_folds = tuple(pair for pair in pairs if pair.fold in fold_ids)
    chosen: list[VerificationPair] = []
    taken: dict[tuple[int, bool], int] = {}
    for pair in in_folds:
        key = (pair.fold, pair.same)
        limit = pairs_per_fold // 2 if pair.same else pairs_per_fold - pairs_per_fold // 2
        if taken.get(key, 0) < limit:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(pair)
    return tuple(chosen), in_folds


def identity_of(path: str) -> str:
    """LFW's identity is the photo's folder name."""
    return PurePosixPath(path).parent.name


def _pair_scores(
    vectors_a: FloatArray, found_a: npt.NDArray[np.bool_], vectors_b: FloatArray, found_b: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    cosine = np.einsum("ij,ij->i", vectors_a, vectors_b).astype(np.float64)
    return np.where(found_a & found_b, np.clip(cosine, -1.0, 1.0), FAILED_SCORE)


def _accuracy_at_clean_thresholds(
    scores: npt.NDArray[np.float64],
    clean_scores: npt.NDArray[np.float64],
    same: npt.NDArray[np.bool_],
    folds: npt.NDArray[np.int64],
) -> float:
    """Mean over folds of the accuracy at the threshold fitted on the other folds' clean scores."""
    accuracies = []
    for fold in np.unique(folds):
        held_out = folds == fold
        if held_out.all():
            threshold, _ = metrics.best_threshold(clean_scores, same)
        else:
            threshold, _ = metrics.best_threshold(clean_scores[~held_out], same[~held_out])
        accuracies.append(metrics.accuracy_at(scores[held_out], same[held_out], threshold))
    return float(np.mean(accuracies))


@dataclass(frozen=True)
class _Subset:
    """Row indices into the clean observations for the benchmark's pairs, probes and gallery."""

    rows_a: npt.NDArray[np.int64]
    rows_b: npt.NDArray[np.int64]
    same: npt.NDArray[np.bool_]
    folds: npt.NDArray[np.int64]
    probe_paths: tuple[str, ...]  # distinct second photos (degraded)
    probe_rows: npt.NDArray[np.int64]  # their rows among the clean observations
    pair_probe: npt.NDArray[np.int64]  # each pair's index into probe_paths
    gallery_rows: npt.NDArray[np.int64]  # every clean photo of the chosen folds
    gallery_identities: npt.NDArray[np.str_]
    probe_identities: npt.NDArray[np.str_]


def _subset(pairs: Sequence[VerificationPair], gallery_paths: Sequence[str], row_of: dict[str, int]) -> _Subset:
    probe_paths = tuple(dict.fromkeys(pair.path_b for pair in pairs))
    probe_index = {path: index for index, path in enumerate(probe_paths)}
    return _Subset(
        rows_a=np.array([row_of[pair.path_a] for pair in pairs], dtype=np.int64),
        rows_b=np.array([row_of[pair.path_b] for pair in pairs], dtype=np.int64),
        same=np.array([pair.same for pair in pairs], dtype=np.bool_),
        folds=np.array([pair.fold for pair in pairs], dtype=np.int64),
        probe_paths=probe_paths,
        probe_rows=np.array([row_of[path] for path in probe_paths], dtype=np.int64),
        pair_probe=np.array([probe_index[pair.path_b] for pair in pairs], dtype=np.int64),
        gallery_rows=np.array([row_of[path] for path in gallery_paths], dtype=np.int64),
        gallery_identities=np.array([identity_of(path) for path in gallery_paths], dtype=np.str_),
        probe_identities=np.array([identity_of(path) for path in probe_paths], dtype=np.str_),
    )


def _measure(
    condition: str,
    strength: float,
    unit: str,
    probes: Observations,
    clean: Observations,
    subset: _Subset,
    clean_scores: npt.NDArray[np.float64],
    threshold: float,
) -> ConditionResult:
    """Every figure of one condition, given the observations of its (degraded) probes."""
    pair_vectors_b = probes.vectors[subset.pair_probe]
    pair_found_b = probes.has_face[subset.pair_probe]
    scores = _pair_scores(clean.vectors[subset.rows_a], clean.has_face[subset.rows_a], pair_vectors_b, pair_found_b)
    accuracy = _accuracy_at_clean_thresholds(scores, clean_scores, subset.same, subset.folds)
    genuine = scores[subset.same]
    tar = float(np.mean(genuine >= threshold)) if genuine.size else 0.0

    gallery_found = clean.has_face[subset.gallery_rows]
    gallery_vectors = clean.vectors[subset.gallery_rows]
    gallery_flagged = clean.flagged[subset.gallery_rows]
    similarity = probes.vectors @ gallery_vectors.T  # (probes, gallery)
    valid = probes.has_face[:, None] & gallery_found[None, :]
    other_person = subset.probe_identities[:, None] != subset.gallery_identities[None, :]
    impostor = valid & other_person
    high = impostor & (similarity >= threshold)
    flagged_pair = probes.flagged[:, None] | gallery_flagged[None, :]

    # Rank-1 of same-person probes: the best clean photo other than the probe's own clean copy.
    own = subset.probe_rows[:, None] == subset.gallery_rows[None, :]
    searchable = np.where(valid & ~own, similarity, -np.inf)
    mated = np.array(
        [bool(np.any(subset.same[subset.pair_probe == index])) for index in range(len(subset.probe_paths))],
        dtype=np.bool_,
    )
    has_mate = mated & np.any(~other_person & ~own & gallery_found[None, :], axis=1)
    best = np.argmax(searchable, axis=1)
    hit = probes.has_face & (subset.gallery_identities[best] == subset.probe_identities)
    rank1 = float(np.mean(hit[has_mate])) if has_mate.any() else None

    alike = probes.vectors @ probes.vectors.T
    upper = np.triu(np.ones(alike.shape, dtype=np.bool_), k=1)
    alike_impostor = (
        upper
        & probes.has_face[:, None]
        & probes.has_face[None, :]
        & (subset.probe_identities[:, None] != subset.probe_identities[None, :])
    )
    alike_high = alike_impostor & (alike >= threshold)
    alike_flagged = probes.flagged[:, None] | probes.flagged[None, :]

    with_face = probes.has_face
    return ConditionResult(
        condition=condition,
        strength=strength,
        unit=unit,
        pairs=len(scores),
        accuracy=accuracy,
        tar_at_fmr=tar,
        failure_to_detect=float(np.mean(~with_face)),
        probes_flagged=float(np.mean(probes.flagged[with_face])) if with_face.any() else 0.0,
        rank1=rank1,
        impostor_pairs=int(impostor.sum()),
        impostor_fmr=float(high.sum() / max(1, int(impostor.sum()))),
        high_impostors=int(high.sum()),
        high_impostors_flagged=int((high & flagged_pair).sum()),
        flagged_impostor_pairs=int((impostor & flagged_pair).sum()),
        alike_impostor_pairs=int(alike_impostor.sum()),
        alike_high_impostors=int(alike_high.sum()),
        alike_high_impostors_flagged=int((alike_high & alike_flagged).sum()),
        alike_flagged_impostor_pairs=int((alike_impostor & alike_flagged).sum()),
    )


def _profile_result(
    all_pairs: Sequence[VerificationPair],
    row_of: dict[str, int],
    clean: Observations,
    subset: _Subset,
    clean_scores: npt.NDArray[np.float64],
    threshold: float,
) -> ConditionResult | None:
    """Clean pairs of the chosen folds in which one face is turned at least PROFILE_MIN_YAW_DEG."""
    rows_a = np.array([row_of[pair.path_a] for pair in all_pairs], dtype=np.int64)
    rows_b = np.array([row_of[pair.path_b] for pair in all_pairs], dtype=np.int64)
    turned = (np.abs(clean.yaw[rows_a]) >= PROFILE_MIN_YAW_DEG) | (np.abs(clean.yaw[rows_b]) >= PROFILE_MIN_YAW_DEG)
    if not turned.any():
        return None
    same = np.array([pair.same for pair in all_pairs], dtype=np.bool_)
    folds = np.array([pair.fold for pair in all_pairs], dtype=np.int64)
    scores = _pair_scores(clean.vectors[rows_a], clean.has_face[rows_a], clean.vectors[rows_b], clean.has_face[rows_b])
    # Thresholds fitted on the benchmark subset's clean pairs of the other folds, as for every other condition.
    accuracies = []
    for fold in np.unique(folds[turned]):
        others = subset.folds != fold
        reference = others if others.any() else np.ones_like(others)
        fold_threshold, _ = metrics.best_threshold(clean_scores[reference], subset.same[reference])
        chosen = turned & (folds == fold)
        accuracies.append((metrics.accuracy_at(scores[chosen], same[chosen], fold_threshold), int(chosen.sum())))
    accuracy = sum(acc * count for acc, count in accuracies) / sum(count for _, count in accuracies)
    genuine = scores[turned & same]
    impostor = scores[turned & ~same]
    high = impostor >= threshold
    flagged = clean.flagged[rows_a] | clean.flagged[rows_b]
    turned_rows = np.unique(np.concatenate([rows_a[turned], rows_b[turned]]))
    return ConditionResult(
        condition=PROFILE,
        strength=PROFILE_MIN_YAW_DEG,
        unit="|yaw| deg",
        pairs=int(turned.sum()),
        accuracy=float(accuracy),
        tar_at_fmr=float(np.mean(genuine >= threshold)) if genuine.size else 0.0,
        failure_to_detect=float(np.mean(~clean.has_face[turned_rows])),
        probes_flagged=float(np.mean(clean.flagged[turned_rows][clean.has_face[turned_rows]]))
        if clean.has_face[turned_rows].any()
        else 0.0,
        rank1=None,
        impostor_pairs=int(impostor.size),
        impostor_fmr=float(high.mean()) if impostor.size else 0.0,
        high_impostors=int(high.sum()),
        high_impostors_flagged=int((high & flagged[turned & ~same]).sum()),
        flagged_impostor_pairs=int(flagged[turned & ~same].sum()),
    )


ConditionSpec = tuple[str, float, str]


def observe_degraded(
    analyzer: ArrayAnalyzer,
    images: Sequence[npt.NDArray[np.uint8]],
    probe_paths: Sequence[str],
    clean_probes: Observations,
    name: str,
    strength: float,
    *,
    seed: int,
    cache_dir: Path | str | None,
    cache_key: str,
) -> Observations:
    """Degrade each probe image (seeded by seed + its index; occlusions placed with its clean landmarks) and analyse
    it; cached per condition and strength when cache_dir is given."""
    from facetrace.vision.degradations import degrade

    cache = DegradedCache(cache_dir, cache_key, name, strength, seed, probe_paths) if cache_dir is not None else None
    stored = cache.load() if cache is not None else None
    if stored is not None and len(stored.has_face) == len(probe_paths):
        return stored
    analysed: list[AnalyzedImage | Exception] = []
    for index, (image, path) in enumerate(zip(images, probe_paths, strict=True)):
        marks = clean_probes.landmarks[index] if clean_probes.has_face[index] else None
        try:
            degraded = degrade(image, name, strength, marks, seed=seed + index)
        except ValueError as exc:  # an occlusion without landmarks: counted as a failure
            analysed.append(exc)
            continue
        try:
            analysed.append(analyzer.analyze_array(degraded, f"{path}#{name}={strength:g}"))
        except Exception as exc:  # a failing image counts as a failure to detect, the run carries on
            logger.warning("%s (%s %g): %s", path, name, strength, exc)
            analysed.append(exc)
    observed = _observe(analysed, analyzer.embedding_dim)
    if cache is not None:
        cache.save(observed)
    return observed


def default_conditions() -> tuple[ConditionSpec, ...]:
    """Every registered degradation at every strength, in registry order."""
    from facetrace.vision.degradations import CONDITIONS

    return tuple((spec.name, strength, spec.unit) for spec in CONDITIONS.values() for strength in spec.strengths)


def parse_conditions(text: str) -> tuple[ConditionSpec, ...]:
    """'gaussian_blur,jpeg=10' -> every strength of gaussian_blur and jpeg at quality 10 (names from the registry)."""
    from facetrace.vision.degradations import CONDITIONS

    chosen: list[ConditionSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, strength = item.partition("=")
        spec = CONDITIONS.get(name.strip())
        if spec is None:
            raise ValueError(f"unknown degradation {name!r}; known: {', '.join(CONDITIONS)}")
        strengths = (float(strength),) if strength else spec.strengths
        chosen.extend((spec.name, value, spec.unit) for value in strengths)
    if not chosen:
        raise ValueError("no degradation named")
    return tuple(chosen)


@dataclass(frozen=True, eq=False)
class Benchmark:
    """The benchmark's pairs and the clean observations they need (shared with the quality calibration)."""

    root: Path
    subset_pairs: tuple[VerificationPair, ...]
    fold_pairs: tuple[VerificationPair, ...]
    row_of: dict[str, int]
    clean: Observations
    subset: _Subset
    clean_probes: Observations  # the clean observations of subset.probe_paths

    def probe_images(self) -> list[npt.NDArray[np.uint8]]:
        """The decoded (clean) probe photos, to be degraded."""
        from facetrace.vision.images import decode_image

        return [decode_image((self.root / path).read_bytes(), path) for path in self.subset.probe_paths]


def prepare_benchmark(
    analyzer: FaceAnalyzer,
    pairs: Sequence[VerificationPair],
    root: Path,
    *,
    folds: int,
    pairs_per_fold: int,
    cache_dir: Path | str | None,
    cache_key: str | None,
    progress: Callable[[str], None] | None = None,
) -> Benchmark:
    """Select the pairs and analyse (or load from the cache) every clean photo of the chosen folds."""
    subset_pairs, fold_pairs = select_pairs(pairs, folds, pairs_per_fold)
    if not subset_pairs or not any(p.same for p in subset_pairs) or all(p.same for p in subset_pairs):
        raise ValueError("the chosen folds need both same-person and different-person pairs")
    clean_paths = tuple(dict.fromkeys(path for pair in fold_pairs for path in (pair.path_a, pair.path_b)))
    require_files(clean_paths, root)
    row_of = {path: row for row, path in enumerate(clean_paths)}
    clean = observe_clean(
        analyzer,
        root,
        clean_paths,
        cache_dir=cache_dir,
        cache_key=cache_key or analyzer.model_id,
        progress=(lambda done, total: progress(f"clean photos {done}/{total}")) if progress else None,
    )
    subset = _subset(subset_pairs, clean_paths, row_of)
    clean_probes = clean.take(subset.probe_rows)
    return Benchmark(root, subset_pairs, fold_pairs, row_of, clean, subset, clean_probes)


def evaluate_robustness(
    analyzer: ArrayAnalyzer,
    pairs: Sequence[VerificationPair],
    root: Path | str,
    calibration: ScoreCalibration,
    *,
    folds: int = DEFAULT_FOLDS,
    pairs_per_fold: int = DEFAULT_PAIRS_PER_FOLD,
    conditions: Sequence[ConditionSpec] | None = None,
    seed: int = 0,
    cache_dir: Path | str | None = None,
    cache_key: str | None = None,
    progress: Callable[[str], None] | None = None,
    pairs_csv: str = "",
) -> RobustnessReport:
    """Run the benchmark (see the module docstring). The threshold is the calibration's CALIBRATED_FMR similarity."""
    # The vision layer (OpenCV) is imported here so the CLI's --help and argument errors never load it.
    from facetrace.search.calibration import ScoreCalibrator

    if calibration.model_id != analyzer.model_id:
        raise ValueError(f"the calibration is for {calibration.model_id}, the analyzer is {analyzer.model_id}")
    started = time.perf_counter()
    root_path = Path(root)
    bench = prepare_benchmark(
        analyzer,
        pairs,
        root_path,
        folds=folds,
        pairs_per_fold=pairs_per_fold,
        cache_dir=cache_dir,
        cache_key=cache_key,
        progress=progress,
    )
    subset_pairs, fold_pairs, row_of = bench.subset_pairs, bench.fold_pairs, bench.row_of
    clean, subset, clean_probes = bench.clean, bench.subset, bench.clean_probes
    threshold = ScoreCalibrator(calibration).similarity_at(CALIBRATED_FMR)
    clean_scores = _pair_scores(
        clean.vectors[subset.rows_a],
        clean.has_face[subset.rows_a],
        clean.vectors[subset.rows_b],
        clean.has_face[subset.rows_b],
    )
    results = [_measure(CLEAN, 0.0, "", clean_probes, clean, subset, clean_scores, threshold)]
    profile = _profile_result(fold_pairs, row_of, clean, subset, clean_scores, threshold)
    if profile is not None:
        results.append(profile)

    images = bench.probe_images()
    notes: list[str] = []
    missing_landmarks = int((~clean_probes.has_face).sum())
    if missing_landmarks:
        notes.append(f"{missing_landmarks} clean probes without a face: occlusions cannot be placed on them")
    for number, (name, strength, unit) in enumerate(conditions or default_conditions(), start=1):
        condition_started = time.perf_counter()
        observed = observe_degraded(
            analyzer,
            images,
            subset.probe_paths,
            clean_probes,
            name,
            strength,
            seed=seed,
            cache_dir=cache_dir,
            cache_key=cache_key or analyzer.model_id,
        )
        result = _measure(name, strength, unit, observed, clean, subset, clean_scores, threshold)
        results.append(result)
        if progress is not None:
            progress(
                f"{number} {result.label}: accuracy {result.accuracy:.3f}, TAR {result.tar_at_fmr:.3f}, "
                f"failed {result.failure_to_detect:.3f}, {time.perf_counter() - condition_started:.0f} s"
            )

    degraded_rows = [row for row in results if row.condition not in (CLEAN, PROFILE)]
    clean_with_face = clean.has_face
    flag_counts: dict[str, int] = {}
    for row_flags, found in zip(clean.flags, clean_with_face, strict=True):
        if found:
            for flag in row_flags:
                flag_counts[flag] = flag_counts.get(flag, 0) + 1
    return RobustnessReport(
        model_id=analyzer.model_id,
        pairs_csv=pairs_csv,
        folds=tuple(sorted({pair.fold for pair in subset_pairs})),
        pairs=len(subset_pairs),
        threshold=round(threshold, 6),
        threshold_fmr=CALIBRATED_FMR,
        clean_photos=int(clean_with_face.sum()),
        clean_photos_flagged=float(np.mean(clean.flagged[clean_with_face])) if clean_with_face.any() else 0.0,
        clean_flag_counts=flag_counts,
        results=tuple(results),
        high_impostors=sum(row.high_impostors for row in degraded_rows),
        high_impostors_flagged=sum(row.high_impostors_flagged for row in degraded_rows),
        impostor_pairs=sum(row.impostor_pairs for row in degraded_rows),
        flagged_impostor_pairs=sum(row.flagged_impostor_pairs for row in degraded_rows),
        alike_high_impostors=sum(row.alike_high_impostors for row in degraded_rows),
        alike_high_impostors_flagged=sum(row.alike_high_impostors_flagged for row in degraded_rows),
        alike_impostor_pairs=sum(row.alike_impostor_pairs for row in degraded_rows),
        alike_flagged_impostor_pairs=sum(row.alike_flagged_impostor_pairs for row in degraded_rows),
        seconds=round(time.perf_counter() - started, 1),
        seed=seed,
        notes=tuple(notes),
    )


def plot_report(report: RobustnessReport, path: Path | str) -> None:
    """One panel per degradation: accuracy and TAR at the calibrated threshold against strength; clean as a line."""
    # matplotlib (the eval extra) is imported lazily: only the plot needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean = next(row for row in report.results if row.condition == CLEAN)
    names = list(dict.fromkeys(row.condition for row in report.results if row.condition not in (CLEAN, PROFILE)))
    columns = 4
    rows = max(1, -(-len(names) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        points = [row for row in report.results if row.condition == name]
        labels = [f"{row.strength:g}" for row in points]
        positions = list(range(len(points)))
        axis.plot(positions, [row.accuracy * 100 for row in points], "o-", label="accuracy")
        axis.plot(positions, [row.tar_at_fmr * 100 for row in points], "s-", label="TAR@FMR 1e-3")
        axis.plot(positions, [row.failure_to_detect * 100 for row in points], "x:", label="failed to detect")
        axis.axhline(clean.accuracy * 100, color="grey", linestyle="--", linewidth=0.8)
        axis.set_xticks(positions, labels)
        axis.set_title(name)
        axis.set_xlabel(points[0].unit)
        axis.set_ylim(0, 101)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names) :]:
        axis.axis("off")
    axes.flat[0].set_ylabel("%")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    figure.suptitle(
        f"{report.model_id}: {report.pairs} LFW pairs, degraded probe vs clean photo (dashed: clean accuracy)"
    )
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def side_by_side_table(reports: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """A Markdown table of several runs' JSON reports (RobustnessReport.to_dict) side by side, one row per condition
    and strength; each cell holds one measure (accuracy, TAR at the calibrated threshold, failures to detect, rank-1,
    in %) for every run, in the order given, separated by " / ".

    The first report is the reference (the plain pipeline); rows follow its order, and a run without a row shows
    "-". Runs must share the model, pairs, seed and threshold, or the comparison means nothing.
    """
    if not reports:
        raise ValueError("no reports to compare")
    first = reports[0][1]
    for label, report in reports[1:]:
        for key in ("model_id", "pairs", "threshold", "seed", "folds"):
            if report.get(key) != first.get(key):
                raise ValueError(f"{label}: {key} {report.get(key)!r} differs from {first.get(key)!r}")
    measures = (
        ("accuracy %", "accuracy"),
        ("TAR@FMR1e-3 %", "tar_at_fmr"),
        ("failed to detect %", "failure_to_detect"),
        ("rank-1 %", "rank1"),
    )
    runs = " / ".join(label for label, _ in reports)
    header = ["condition", "strength"] + [f"{name} ({runs})" for name, _ in measures]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows_of = [{(row["condition"], row["strength"]): row for row in report["results"]} for _, report in reports]
    for row in first["results"]:
        at = (row["condition"], row["strength"])
        strength = "" if row["condition"] in (CLEAN, PROFILE) else f"{row['strength']:g} {row['unit']}"
        cells = [row["condition"], strength]
        for _, field_name in measures:
            values = [rows[at].get(field_name) if at in rows else None for rows in rows_of]
            if all(value is None for value in values):
                cells.append("")
                continue
            cells.append(" / ".join("-" if value is None else f"{value * 100:.1f}" for value in values))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
