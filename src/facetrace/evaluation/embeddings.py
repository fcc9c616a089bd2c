"""Embedding dataset images once, choosing the subject's face, with an on-disk cache shared by every harness.

Embedding all 13,233 LFW photos takes minutes on two cores, so verification, identification and calibration all read
their vectors through one cache file per model: cache_dir/embeddings-<model>.npz, keyed by the image's resolved
path. Delete the cache when the images or the model change in a way the model id does not capture.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.core.errors import ModelMismatchError
from facetrace.core.ports import FaceAnalyzer
from facetrace.core.types import AnalyzedFace, AnalyzedImage, FloatArray

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (images done, images total)

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Images per analyze_batch call: enough to batch the embedder, small enough that one failure costs little.
_BATCH_IMAGES = 32
# Save the cache every this many newly embedded images, so an interrupted full-LFW run resumes where it stopped.
_CHECKPOINT_IMAGES = 1000


def select_subject_face(image: AnalyzedImage) -> AnalyzedFace | None:
    """The face a portrait dataset is about: large and near the centre (LFW crops are centred on the subject).

    Bystanders in LFW photos are often as sharp as the subject but smaller and off-centre, so size alone or
    detection score alone picks the wrong face; the area is discounted by the distance from the image centre.
    """
    if not image.faces:
        return None
    centre_x = image.width / 2.0
    centre_y = image.height / 2.0
    half_diagonal = max(1.0, float(np.hypot(centre_x, centre_y)))

    def weight(face: AnalyzedFace) -> float:
        box = face.detection.box
        distance = float(np.hypot((box.x1 + box.x2) / 2.0 - centre_x, (box.y1 + box.y2) / 2.0 - centre_y))
        closeness = max(0.0, 1.0 - distance / half_diagonal)
        return box.area * closeness * closeness

    return max(image.faces, key=weight)


@dataclass(frozen=True)
class ImageEmbedding:
    """The subject's embedding for one image, or has_face False (no face, or unreadable: error says why)."""

    vector: FloatArray
    has_face: bool
    faces_found: int
    error: str = ""
    yaw_deg: float = float("nan")  # the subject face's yaw as the quality module estimates it; NaN without a face


@dataclass(frozen=True, eq=False)
class EmbeddedImages:
    """Subject embeddings of a list of images; rows without a face hold zeros and has_face False."""

    model_id: str
    paths: tuple[str, ...]
    vectors: FloatArray  # (n, dim), L2-normalised rows where has_face
    has_face: BoolArray
    faces_found: IntArray
    errors: tuple[tuple[str, str], ...]  # (path, message) for unreadable images
    embed_seconds: float  # time spent analysing images not found in the cache
    newly_embedded: int
    yaw_deg: FloatArray  # (n,) the subject face's estimated yaw; NaN where has_face is False
    row_of: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "row_of", {path: row for row, path in enumerate(self.paths)})

    @property
    def without_face(self) -> tuple[str, ...]:
        return tuple(path for path, found in zip(self.paths, self.has_face, strict=True) if not found)


def _cache_file_name(cache_key: str) -> str:
    return "embeddings-" + re.sub(r"[^A-Za-z0-9._+-]+", "_", cache_key) + ".npz"


class EmbeddingCache:
    """Subject embeddings of one model variant, keyed by resolved image path, persisted as one .npz file."""

    def __init__(self, cache_dir: Path | str, cache_key: str, dim: int) -> None:
        self.path = Path(cache_dir) / _cache_file_name(cache_key)
        self.cache_key = cache_key
        self.dim = dim
        self._entries: dict[str, ImageEmbedding] = {}
        self._dirty = False
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        with np.load(self.path, allow_pickle=False) as data:
            stored_key = str(data["cache_key"])
            if stored_key != self.cache_key:
                raise ModelMismatchError(stored_key, self.cache_key, f"embedding cache {self.path}")
            if "yaw_deg" not in data.files:
                logger.warning(
                    "ignoring %s: made before caches kept each face's yaw; its images are embedded again", self.path
                )
                return
            vectors = np.asarray(data["vectors"], dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[1] != self.dim:
                logger.warning(
                    "ignoring %s: vectors of shape %s, expected width %d", self.path, vectors.shape, self.dim
                )
                return
            for key, vector, found, count, error, yaw in zip(
                data["keys"].tolist(),
                vectors,
                data["has_face"].tolist(),
                data["faces_found"].tolist(),
                data["errors"].tolist(),
                data["yaw_deg"].tolist(),
                strict=True,
            ):
                self._entries[str(key)] = ImageEmbedding(vector, bool(found), int(count), str(error), float(yaw))
        logger.info("embedding cache %s: %d images", self.path, len(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> ImageEmbedding | None:
        return self._entries.get(key)

    def put(self, key: str, entry: ImageEmbedding) -> None:
        self._entries[key] = entry
        self._dirty = True

    def save(self) -> None:
        """Write atomically (temp file then os.replace) so a crash never leaves a truncated cache."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self._entries)
        entries = [self._entries[key] for key in keys]
        vectors = (
            np.stack([entry.vector for entry in entries]).astype(np.float32)
            if entries
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        descriptor, temp_name = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                np.savez(
                    handle,
                    cache_key=np.array(self.cache_key),
                    keys=np.array(keys, dtype=np.str_),
                    vectors=vectors,
                    has_face=np.array([entry.has_face for entry in entries], dtype=np.bool_),
                    faces_found=np.array([entry.faces_found for entry in entries], dtype=np.int64),
                    errors=np.array([entry.error for entry in entries], dtype=np.str_),
                    yaw_deg=np.array([entry.yaw_deg for entry in entries], dtype=np.float32),
                )
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        self._dirty = False


def _embedding_of(result: AnalyzedImage | Exception, dim: int) -> ImageEmbedding:
    empty = np.zeros(dim, dtype=np.float32)
    if isinstance(result, Exception):
        return ImageEmbedding(empty, has_face=False, faces_found=0, error=str(result) or type(result).__name__)
    face = select_subject_face(result)
    if face is None:
        return ImageEmbedding(empty, has_face=False, faces_found=0)
    vector = np.asarray(face.embedding.vector, dtype=np.float32).reshape(-1)
    if vector.shape != (dim,):
        raise ValueError(f"{result.source}: embedding has shape {vector.shape}, the analyzer declared ({dim},)")
    # Re-normalise defensively: cosine similarity below is a plain dot product.
    norm = float(np.linalg.norm(vector))
    if norm > 0:
        vector = vector / norm
    return ImageEmbedding(
        vector.astype(np.float32), has_face=True, faces_found=len(result.faces), yaw_deg=face.quality.yaw_deg
    )


def embed_images(
    analyzer: FaceAnalyzer,
    root: Path | str,
    relative_paths: Sequence[str],
    *,
    cache_dir: Path | str | None = None,
    cache_key: str | None = None,
    progress: ProgressCallback | None = None,
) -> EmbeddedImages:
    """Embed the subject face of each distinct image once (cached), in the order of first appearance.

    cache_key names the model variant in the cache (default: the analyzer's model id); give a distinct key when a
    setting that changes embeddings (e.g. flip test-time augmentation) does not change the model id.
    """
    root_path = Path(root)
    paths = tuple(dict.fromkeys(relative_paths))
    dim = analyzer.embedding_dim
    cache = EmbeddingCache(cache_dir, cache_key or analyzer.model_id, dim) if cache_dir is not None else None
    keys = [str((root_path / path).resolve()) for path in paths]
    results: dict[str, ImageEmbedding] = {}
    pending: list[int] = []
    for row, key in enumerate(keys):
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            results[paths[row]] = cached
        else:
            pending.append(row)
    if paths:
        logger.info(
            "embedding %d images (%d from cache) with %s", len(paths), len(paths) - len(pending), analyzer.model_id
        )
    done = len(paths) - len(pending)
    if progress is not None:
        progress(done, len(paths))
    started = time.perf_counter()
    since_checkpoint = 0
    for batch_start in range(0, len(pending), _BATCH_IMAGES):
        rows = pending[batch_start : batch_start + _BATCH_IMAGES]
        items: list[tuple[bytes, str]] = []
        for row in rows:
            items.append(((root_path / paths[row]).read_bytes(), paths[row]))
        for row, result in zip(rows, analyzer.analyze_batch(items), strict=True):
            entry = _embedding_of(result, dim)
            if entry.error:
                logger.warning("%s: %s", paths[row], entry.error)
            results[paths[row]] = entry
            if cache is not None:
                cache.put(keys[row], entry)
        done += len(rows)
        since_checkpoint += len(rows)
        if cache is not None and since_checkpoint >= _CHECKPOINT_IMAGES:
            cache.save()
            since_checkpoint = 0
        if progress is not None:
            progress(done, len(paths))
    embed_seconds = time.perf_counter() - started
    if cache is not None:
        cache.save()
    entries = [results[path] for path in paths]
    vectors = (
        np.stack([entry.vector for entry in entries]).astype(np.float32)
        if entries
        else np.zeros((0, dim), dtype=np.float32)
    )
    if pending:
        logger.info(
            "embedded %d images in %.1f s (%.1f images/s)",
            len(pending),
            embed_seconds,
            len(pending) / max(embed_seconds, 1e-9),
        )
    return EmbeddedImages(
        model_id=analyzer.model_id,
        paths=paths,
        vectors=vectors,
        has_face=np.array([entry.has_face for entry in entries], dtype=np.bool_),
        faces_found=np.array([entry.faces_found for entry in entries], dtype=np.int64),
        errors=tuple((path, entry.error) for path, entry in zip(paths, entries, strict=True) if entry.error),
        embed_seconds=embed_seconds,
        newly_embedded=len(pending),
        yaw_deg=np.array([entry.yaw_deg for entry in entries], dtype=np.float32),
    )
