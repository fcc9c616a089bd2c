"""Ports: what the use cases need from the adapters. Adapters implement them; services receive them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from facetrace.core.types import AnalyzedFace, AnalyzedImage, FaceRecord, FloatArray, MediaAsset

IdArray = npt.NDArray[np.int64]


@runtime_checkable
class FaceAnalyzer(Protocol):
    """Decode, detect, assess, align and embed. Implemented in vision/."""

    @property
    def model_id(self) -> str: ...

    @property
    def embedding_dim(self) -> int: ...

    def analyze(self, data: bytes, source: str) -> AnalyzedImage:
        """Every face in an encoded image. Raises ImageDecodeError naming source for unreadable input."""
        ...

    def analyze_batch(self, items: Sequence[tuple[bytes, str]]) -> list[AnalyzedImage | Exception]:
        """Several images at once (embeddings batched); a failing image yields its exception in place."""
        ...


class Catalog(Protocol):
    """The source of truth: assets, faces, embeddings, provenance, runs. Implemented in catalog/."""

    def start_run(self, description: str, model_id: str) -> int: ...

    def finish_run(self, run_id: int, status: str, stats: dict[str, int]) -> None: ...

    def known_sha256(self, sha256s: Sequence[str]) -> set[str]:
        """Which of these content hashes are already in the catalog."""
        ...

    def add_asset_with_faces(
        self,
        run_id: int,
        asset: MediaAsset,
        faces: Sequence[AnalyzedFace],
        model_id: str,
        *,
        width: int | None = None,
        height: int | None = None,
        thumbnail_paths: Sequence[str | None] | None = None,
    ) -> tuple[int, list[int]]:
        """Store an asset and its faces (with their thumbnail paths, one per face) in one transaction;
        returns (asset_id, face_ids). A known sha256 returns the existing asset id and no face ids."""
        ...

    def set_thumbnail_paths(self, paths: dict[int, str]) -> None: ...

    def record_error(self, run_id: int, uri: str, message: str) -> None: ...

    def faces_by_id(self, face_ids: Sequence[int]) -> dict[int, FaceRecord]: ...

    def iter_embeddings(self, model_id: str, batch_size: int = 10_000) -> Iterator[tuple[IdArray, FloatArray]]:
        """All stored embeddings of one model, in batches of (face_ids, vectors)."""
        ...

    def count_faces(self, model_id: str | None = None) -> int: ...

    def face_ids(self, model_id: str) -> IdArray:
        """Sorted ids of every stored face of one model (to reconcile with an index)."""
        ...

    def embeddings_by_id(self, ids: Sequence[int], model_id: str | None = None) -> tuple[IdArray, FloatArray]:
        """The stored embeddings of these faces, in the order asked; unknown ids are left out."""
        ...

    def close(self) -> None: ...


class VectorIndex(Protocol):
    """Nearest-neighbour search over embeddings of one model. Derived from the catalog, rebuildable."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        """Insert or replace (idempotent upsert by id)."""
        ...

    def remove(self, ids: IdArray) -> int: ...

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        """Top-k by cosine similarity; returns (similarities, ids), shape (q, k); empty slots have id -1 and
        similarity -inf."""
        ...

    def ids(self) -> IdArray: ...

    def save(self) -> None:
        """Persist atomically (temp file then os.replace). A no-op for stores that persist on write."""
        ...
