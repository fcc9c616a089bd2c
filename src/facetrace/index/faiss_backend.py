"""A FAISS index in one file plus a JSON sidecar that says which model made its vectors.

The structure (today an exact IndexIDMap2 over IndexFlatIP: inner product on unit vectors is cosine) is chosen by
structure_for_size(), so a later change to an approximate structure for large galleries touches one function;
the sidecar records which structure a file holds.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from facetrace.core.errors import ModelMismatchError, VectorIndexError
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

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
EXACT_STRUCTURE = "IDMap2,Flat"
REBUILD_HINT = "run `facetrace index rebuild` to recreate it from the catalog"


def structure_for_size(expected_count: int) -> str:
    """The faiss index_factory string for a gallery of about expected_count vectors.

    Exact search for every size for now; an approximate structure for very large galleries goes here.
    """
    del expected_count
    return EXACT_STRUCTURE


def meta_path_for(index_path: Path) -> Path:
    """Where the sidecar of an index file lives: next to it, so both move together."""
    return index_path.with_name(index_path.name + ".meta.json")


class FaissIndex:
    """A persistent index of one model's embeddings. Changes live in memory until save().

    fresh=True starts empty without reading the files at path (they are replaced at the next save): how
    `facetrace index rebuild` recovers from a corrupt index or one made by another model.
    """

    def __init__(self, path: str | os.PathLike[str], model_id: str, dim: int, *, fresh: bool = False) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self._path = Path(path)
        self._meta_path = meta_path_for(self._path)
        self._model_id = model_id
        self._dim = int(dim)
        self._lock = threading.RLock()
        self._catalog_fingerprint: str | None = None
        self._structure = structure_for_size(0)
        if not fresh and (self._path.exists() or self._meta_path.exists()):
            self._index = self._load()
        else:
            self._index = self._new_index(self._structure)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def path(self) -> Path:
        return self._path

    @property
    def catalog_fingerprint(self) -> str | None:
        """What the catalog looked like when this index was last synchronised (saved in the sidecar)."""
        return self._catalog_fingerprint

    @catalog_fingerprint.setter
    def catalog_fingerprint(self, value: str | None) -> None:
        self._catalog_fingerprint = value

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"FaissIndex(path={str(self._path)!r}, model_id={self._model_id!r}, dim={self._dim}, count={len(self)})"

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        vectors = check_vectors(vectors, self._dim)
        ids = check_ids(ids, vectors.shape[0])
        ids, vectors = last_occurrence(ids, vectors)
        if ids.size == 0:
            return
        with self._lock:
            # Removing from a flat index rewrites it, so only pay that when some ids really are replaced
            # (a rebuild from the catalog adds only new ids).
            if self._index.ntotal and np.isin(ids, self._stored_ids()).any():
                self._index.remove_ids(ids)
            self._index.add_with_ids(vectors, ids)

    def remove(self, ids: IdArray) -> int:
        ids = check_ids(ids)
        if ids.size == 0:
            return 0
        with self._lock:
            return int(self._index.remove_ids(ids))

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        queries = check_vectors(queries, self._dim, what="queries")
        k = check_k(k)
        with self._lock:
            raw_similarities, raw_ids = self._index.search(queries, k)
        similarities = np.asarray(raw_similarities, dtype=np.float32)
        result_ids = np.asarray(raw_ids, dtype=np.int64)
        missing = result_ids < 0
        similarities[missing] = MISSING_SIMILARITY
        result_ids[missing] = MISSING_ID
        # faiss orders equal scores arbitrarily; order them by id like the exact oracle so results are reproducible.
        for row in range(result_ids.shape[0]):
            order = np.lexsort((np.where(missing[row], np.iinfo(np.int64).max, result_ids[row]), -similarities[row]))
            similarities[row] = similarities[row, order]
            result_ids[row] = result_ids[row, order]
        return similarities, result_ids

    def ids(self) -> IdArray:
        with self._lock:
            return np.sort(self._stored_ids())

    def save(self) -> None:
        """Write the index and its sidecar atomically: a crash leaves the previous pair, never a half-written file."""
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with _temporary_sibling(self._path) as index_tmp:
                faiss.write_index(self._index, str(index_tmp))
                _fsync_file(index_tmp)
                meta = {
                    "format_version": FORMAT_VERSION,
                    "model_id": self._model_id,
                    "dim": self._dim,
                    "count": int(self._index.ntotal),
                    "structure": self._structure,
                    "file_bytes": index_tmp.stat().st_size,
                    "catalog_fingerprint": self._catalog_fingerprint,
                }
                with _temporary_sibling(self._meta_path) as meta_tmp:
                    meta_tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
                    _fsync_file(meta_tmp)
                    # The index first: if the process dies between the two renames, the old sidecar's count and
                    # file size no longer match and the next open says to rebuild instead of serving stale ids.
                    os.replace(index_tmp, self._path)
                    os.replace(meta_tmp, self._meta_path)
            _fsync_directory(self._path.parent)
        logger.debug("saved %d vectors of %s to %s", meta["count"], self._model_id, self._path)

    def _stored_ids(self) -> IdArray:
        return cast(IdArray, faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False))

    def _new_index(self, structure: str) -> Any:
        return faiss.index_factory(self._dim, structure, faiss.METRIC_INNER_PRODUCT)

    def _load(self) -> Any:
        meta = self._read_meta()
        stored_model = str(meta["model_id"])
        if stored_model != self._model_id:
            raise ModelMismatchError(expected=stored_model, actual=self._model_id, where=f"index {self._path}")
        if int(meta["dim"]) != self._dim:
            raise VectorIndexError(
                f"{self._path}: holds {meta['dim']}-dimensional vectors, not {self._dim}; {REBUILD_HINT}"
            )
        if not self._path.exists():
            raise VectorIndexError(f"{self._path}: index file is missing but its sidecar exists; {REBUILD_HINT}")
        size = self._path.stat().st_size
        if int(meta.get("file_bytes", size)) != size:
            raise VectorIndexError(
                f"{self._path}: index file is {size} bytes but was saved as {meta['file_bytes']} "
                f"(truncated or replaced); {REBUILD_HINT}"
            )
        try:
            index = faiss.read_index(str(self._path))
        except RuntimeError as exc:
            raise VectorIndexError(f"{self._path}: index file is unreadable ({exc}); {REBUILD_HINT}") from exc
        if not isinstance(index, faiss.IndexIDMap2) or index.d != self._dim:
            raise VectorIndexError(f"{self._path}: not a facetrace index of dimension {self._dim}; {REBUILD_HINT}")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise VectorIndexError(f"{self._path}: index does not use inner-product similarity; {REBUILD_HINT}")
        if int(index.ntotal) != int(meta["count"]):
            raise VectorIndexError(
                f"{self._path}: holds {index.ntotal} vectors but its sidecar says {meta['count']}; {REBUILD_HINT}"
            )
        self._structure = str(meta.get("structure", EXACT_STRUCTURE))
        fingerprint = meta.get("catalog_fingerprint")
        self._catalog_fingerprint = None if fingerprint is None else str(fingerprint)
        return index

    def _read_meta(self) -> dict[str, Any]:
        if not self._meta_path.exists():
            raise VectorIndexError(
                f"{self._path}: its sidecar {self._meta_path.name} is missing, so the model that made these "
                f"vectors is unknown; {REBUILD_HINT}"
            )
        try:
            meta = json.loads(self._meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VectorIndexError(f"{self._meta_path}: sidecar is unreadable ({exc}); {REBUILD_HINT}") from exc
        if not isinstance(meta, dict) or not {"model_id", "dim", "count", "format_version"} <= meta.keys():
            raise VectorIndexError(f"{self._meta_path}: sidecar lacks model_id, dim or count; {REBUILD_HINT}")
        if meta["format_version"] != FORMAT_VERSION:
            raise VectorIndexError(
                f"{self._meta_path}: format version {meta['format_version']} is not {FORMAT_VERSION}, the one this "
                f"facetrace writes; {REBUILD_HINT}"
            )
        return cast(dict[str, Any], meta)


@contextmanager
def _temporary_sibling(target: Path) -> Iterator[Path]:
    """A fresh temp path in target's directory (os.replace is atomic only within one file system); removed on error."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    """Make the renames durable; directories cannot be opened for fsync on Windows, where this is skipped."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
