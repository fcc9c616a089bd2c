"""Checks every backend applies to what it is given, so all backends accept and refuse the same inputs."""

from __future__ import annotations

import numpy as np

from facetrace.core.errors import VectorIndexError
from facetrace.core.ports import IdArray
from facetrace.core.types import FloatArray

# Similarity reported for an empty result slot (its id is -1). -inf sorts below every real cosine in [-1, 1],
# where a number like -1.0 would look like a real (if poor) match.
MISSING_SIMILARITY = np.float32(-np.inf)
MISSING_ID = np.int64(-1)


class VectorShapeError(VectorIndexError, ValueError):
    """Vectors or ids handed to an index have the wrong shape, dtype or values (a caller's mistake, not corruption)."""


def check_vectors(vectors: FloatArray, dim: int, what: str = "vectors") -> FloatArray:
    """vectors as a C-contiguous float32 (n, dim) array, or VectorShapeError saying what is wrong."""
    if not isinstance(vectors, np.ndarray):
        raise VectorShapeError(f"{what} must be a numpy array of float32, got {type(vectors).__name__}")
    if vectors.dtype != np.float32:
        # Silently casting float64 would hide a caller that skipped the embedder's normalisation step.
        raise VectorShapeError(f"{what} must be float32, got {vectors.dtype}; convert with .astype(np.float32)")
    if vectors.ndim != 2:
        raise VectorShapeError(f"{what} must be 2-D (n, {dim}), got shape {vectors.shape}")
    if vectors.shape[1] != dim:
        raise VectorShapeError(
            f"{what} have dimension {vectors.shape[1]} but this index holds dimension {dim}; "
            "embeddings from a different model?"
        )
    if not np.isfinite(vectors).all():
        raise VectorShapeError(f"{what} contain NaN or infinite values")
    return np.ascontiguousarray(vectors)


def check_ids(ids: IdArray, count: int | None = None) -> IdArray:
    """ids as a 1-D int64 array of non-negative values (-1 marks an empty result slot, so it cannot be an id)."""
    if not isinstance(ids, np.ndarray):
        raise VectorShapeError(f"ids must be a numpy array of int64, got {type(ids).__name__}")
    if ids.ndim != 1:
        raise VectorShapeError(f"ids must be 1-D, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise VectorShapeError(f"ids must be integers, got {ids.dtype}")
    ids64 = np.ascontiguousarray(ids, dtype=np.int64)
    if count is not None and ids64.shape[0] != count:
        raise VectorShapeError(f"got {ids64.shape[0]} ids for {count} vectors")
    if ids64.size and int(ids64.min()) < 0:
        raise VectorShapeError("ids must be non-negative (-1 marks an empty result slot)")
    return ids64


def check_k(k: int) -> int:
    if k < 1:
        raise VectorShapeError(f"k must be at least 1, got {k}")
    return int(k)


def last_occurrence(ids: IdArray, vectors: FloatArray) -> tuple[IdArray, FloatArray]:
    """Drop repeated ids within one batch, keeping the last vector for each: the same rule as repeated add() calls."""
    if ids.size < 2:
        return ids, vectors
    reversed_ids = ids[::-1]
    _, first_in_reversed = np.unique(reversed_ids, return_index=True)
    if first_in_reversed.size == ids.size:
        return ids, vectors
    keep = np.sort(ids.size - 1 - first_in_reversed)
    return ids[keep], np.ascontiguousarray(vectors[keep])
