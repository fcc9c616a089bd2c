"""How arrays and flag lists are stored in columns: exact bytes, one documented layout."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facetrace.core.types import FloatArray

# Explicit little-endian so a catalog written on one machine reads the same on any other.
STORED_FLOAT = np.dtype("<f4")
LANDMARK_SHAPE = (5, 2)


def encode_floats(values: FloatArray) -> bytes:
    return np.ascontiguousarray(values, dtype=STORED_FLOAT).tobytes()


def decode_vector(blob: bytes, dim: int) -> FloatArray:
    vector = np.frombuffer(blob, dtype=STORED_FLOAT)
    if vector.shape[0] != dim:
        raise ValueError(f"stored embedding has {vector.shape[0]} values, its row says {dim}")
    return vector.astype(np.float32)


def decode_matrix(blobs: Sequence[bytes], dim: int) -> FloatArray:
    """Stack equally sized embedding blobs into an (n, dim) float32 matrix with one copy."""
    joined = np.frombuffer(b"".join(blobs), dtype=STORED_FLOAT)
    if joined.shape[0] != len(blobs) * dim:
        raise ValueError(f"stored embeddings are not all {dim} values long")
    return joined.reshape(len(blobs), dim).astype(np.float32)


def decode_landmarks(blob: bytes) -> FloatArray:
    return np.frombuffer(blob, dtype=STORED_FLOAT).reshape(LANDMARK_SHAPE).astype(np.float32)


def encode_flags(flags: Sequence[str]) -> str:
    for flag in flags:
        if "," in flag:
            raise ValueError(f"quality flag {flag!r} contains a comma, the stored separator")
    return ",".join(flags)


def decode_flags(text: str | None) -> tuple[str, ...]:
    return tuple(flag for flag in (text or "").split(",") if flag)
