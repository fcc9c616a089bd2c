"""An exact, in-memory index: brute-force cosine with numpy. Small galleries and the oracle other backends are
tested against."""

from __future__ import annotations

import threading

import numpy as np

from facetrace.core.ports import IdArray
from facetrace.core.types import FloatArray
from facetrace.index.vectors import (
    MISSING_ID,
    MISSING_SIMILARITY,
    check_ids,
    check_k,
    check_vectors,
    last_occurrence,
)


class ExactMemoryIndex:
    """Exact top-k by inner product (= cosine on unit vectors). Nothing is persisted; save() is a no-op."""

    def __init__(self, model_id: str, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self._model_id = model_id
        self._dim = int(dim)
        self._ids: IdArray = np.empty(0, dtype=np.int64)
        self._vectors: FloatArray = np.empty((0, self._dim), dtype=np.float32)
        self._lock = threading.RLock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __repr__(self) -> str:
        return f"ExactMemoryIndex(model_id={self._model_id!r}, dim={self._dim}, count={len(self)})"

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        vectors = check_vectors(vectors, self._dim)
        ids = check_ids(ids, vectors.shape[0])
        ids, vectors = last_occurrence(ids, vectors)
        with self._lock:
            keep = ~np.isin(self._ids, ids)
            self._ids = np.concatenate([self._ids[keep], ids])
            self._vectors = np.concatenate([self._vectors[keep], vectors])

    def remove(self, ids: IdArray) -> int:
        ids = check_ids(ids)
        with self._lock:
            gone = np.isin(self._ids, ids)
            removed = int(gone.sum())
            if removed:
                self._ids = self._ids[~gone]
                self._vectors = self._vectors[~gone]
            return removed

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        queries = check_vectors(queries, self._dim, what="queries")
        k = check_k(k)
        n_queries = queries.shape[0]
        similarities = np.full((n_queries, k), MISSING_SIMILARITY, dtype=np.float32)
        result_ids = np.full((n_queries, k), MISSING_ID, dtype=np.int64)
        with self._lock:
            stored_ids, stored = self._ids, self._vectors
        found = min(k, stored_ids.shape[0])
        if found == 0 or n_queries == 0:
            return similarities, result_ids
        scores = queries @ stored.T
        for row in range(n_queries):
            # Highest similarity first; ties broken by the smaller id so results are reproducible.
            order = np.lexsort((stored_ids, -scores[row]))[:found]
            similarities[row, :found] = scores[row, order]
            result_ids[row, :found] = stored_ids[order]
        return similarities, result_ids

    def ids(self) -> IdArray:
        with self._lock:
            return np.sort(self._ids)

    def settle(self, timeout: float | None = None) -> bool:
        """No background work here."""
        return True

    def save(self) -> None:
        """Nothing to persist: this index lives only as long as the process."""
