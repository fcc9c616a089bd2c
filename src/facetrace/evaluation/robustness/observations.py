"""What the analyzer saw of each photo of the benchmark, clean or degraded: its subject face's vector, landmarks,
quality score and flags. Clean photos are analysed once and cached (vectors, landmarks, quality) so reruns only pay for
the degraded copies; each condition's degraded probes are cached too, and the quality calibration reads them back.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from facetrace.core.ports import FaceAnalyzer
from facetrace.core.types import AnalyzedImage, FloatArray
from facetrace.evaluation.embeddings import ProgressCallback, select_subject_face

logger = logging.getLogger(__name__)

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
