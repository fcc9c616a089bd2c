"""A FAISS index in one file plus a JSON sidecar that says which model made its vectors and which structure it holds.

Two structures, chosen by structure_for_size() from the gallery size (or forced with structure="exact"/"ivf"):

exact ("IDMap2,Flat")
    Every vector in one flat inner-product index (inner product on unit vectors is cosine). Exact, one file, all of
    it in RAM (4 * dim bytes per face). The choice below APPROXIMATE_FROM faces.
approximate ("IVF{nlist},SQ8" or "IVF{nlist},PQ{m}x4fs", plus re-ranking)
    An inverted file with a flat coarse quantizer holds compressed codes (SQ8 for dim <= 128, else 4-bit fast-scan
    PQ with one sub-quantizer per 8 dimensions, half a byte each), searched in nprobe of its nlist lists. The best
    `rerank` candidates are then re-scored with dot products against the full vectors, kept as float16 in
    `<index>.vectors.npy` and memory-mapped on reopen, so recall stays high while RAM holds only the codes, the
    coarse centroids and 8-byte row labels (about 50 bytes per face at dim 512). Similarities are those of the
    float16-rounded vectors (within about 1e-3 of float32, not bit-exact). Rows of that file are the labels inside
    the IVF; their face ids live in `<index>.ids.npy`. Until enough vectors have arrived to train the IVF (40 per
    list), searches scan the full vectors exactly.

Sidecar format 2 stores the full vectors as float16; format 1 files (float32 vectors) still open, and are rewritten
as format 2 at their next save.

A gallery opened with structure="auto" (the default) is restructured at save() when it crosses the threshold
(either way); `facetrace index rebuild` may pass expected_count to start in the right structure.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import faiss
import numpy as np
import numpy.typing as npt

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

FORMAT_VERSION = 2
# Formats this facetrace opens, and the dtype of an approximate index's vectors file in each.
VECTORS_DTYPE_BY_FORMAT: dict[int, type[np.floating[Any]]] = {1: np.float32, 2: np.float16}
VECTORS_DTYPE = np.float16
EXACT_STRUCTURE = "IDMap2,Flat"
REBUILD_HINT = "run `facetrace index rebuild` to recreate it from the catalog"

StructureChoice = Literal["auto", "exact", "ivf"]
STRUCTURE_CHOICES: tuple[str, ...] = ("auto", "exact", "ivf")
# Below this many faces an exact scan is fast enough (a few ms at dim 512) and needs no training.
APPROXIMATE_FROM = 200_000
# An approximate gallery that shrinks below this goes back to exact at the next save (hysteresis, so a gallery near
# the threshold does not flip at every save).
EXACT_BELOW = APPROXIMATE_FROM // 2
# At most this many inverted lists: at 10M faces, fewer and longer lists scanned with fast-scan PQ beat 4 * sqrt(n).
MAX_NLIST = 4096
TRAIN_POINTS_PER_LIST = 40
MAX_TRAIN_POINTS_PER_LIST = 40
# PQ codebooks: 64 points per centroid and 10 k-means iterations (faiss's 256 and 25 take minutes at dim 512).
PQ_TRAIN_POINTS_PER_CENTROID = 64
PQ_TRAIN_ITERATIONS = 10
DEFAULT_RERANK = 100
# SQ8 codes (one byte per dimension) up to this dimension, 4-bit fast-scan PQ above.
CODE_BYTES_BUDGET = 128
# Rows appended since the last save are held in float16 blocks of this many rows; also the chunk of bulk passes.
ROW_BLOCK = 65_536


@dataclass(frozen=True)
class Structure:
    """What a FaissIndex holds: exact, or IVF codes with exact re-ranking of a shortlist."""

    kind: Literal["exact", "ivf"]
    nlist: int = 0
    code: str = ""
    nprobe: int = 0
    rerank: int = 0

    @property
    def factory(self) -> str:
        """The faiss index_factory string of the structure (the IVF part for the approximate one)."""
        if self.kind == "exact":
            return EXACT_STRUCTURE
        return f"IVF{self.nlist},{self.code}"

    def describe(self) -> str:
        if self.kind == "exact":
            return EXACT_STRUCTURE
        return f"{self.factory},nprobe={self.nprobe},rerank={self.rerank}"


def nlist_for(count: int) -> int:
    """About 4 * sqrt(n) inverted lists, at least 16 (so that small forced galleries still train), at most MAX_NLIST."""
    return max(16, min(MAX_NLIST, round(4 * math.sqrt(max(count, 1)))))


def nprobe_for(nlist: int) -> int:
    """Lists visited per query: 1/8 of them, at least 8 (tuned with bench/search_scale.py, see docs/backends.md)."""
    return min(nlist, max(8, nlist // 8))


def code_for_dim(dim: int) -> str:
    """SQ8 (one byte per dimension) up to CODE_BYTES_BUDGET dimensions, else 4-bit fast-scan PQ ("PQ{m}x4fs") with
    one sub-quantizer per about 8 dimensions (m divides dim)."""
    if dim <= CODE_BYTES_BUDGET:
        return "SQ8"
    target = max(1, dim // 8)
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return f"PQ{min(divisors, key=lambda m: (abs(m - target), -m))}x4fs"


def structure_for_size(expected_count: int, dim: int) -> Structure:
    """The structure for a gallery of about expected_count vectors of dimension dim: exact below APPROXIMATE_FROM."""
    if expected_count < APPROXIMATE_FROM:
        return Structure("exact")
    return approximate_structure(expected_count, dim)


def approximate_structure(
    expected_count: int,
    dim: int,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    rerank: int | None = None,
    code: str | None = None,
) -> Structure:
    lists = int(nlist) if nlist else nlist_for(expected_count)
    return Structure(
        "ivf",
        nlist=lists,
        code=code or code_for_dim(dim),
        nprobe=int(nprobe) if nprobe else nprobe_for(lists),
        rerank=int(rerank) if rerank else DEFAULT_RERANK,
    )


def meta_path_for(index_path: Path) -> Path:
    """Where the sidecar of an index file lives: next to it, so both move together."""
    return index_path.with_name(index_path.name + ".meta.json")


def vectors_path_for(index_path: Path) -> Path:
    """The full vectors (float16 .npy, memory-mapped; float32 in format 1) of an approximate index, for re-ranking."""
    return index_path.with_name(index_path.name + ".vectors.npy")


def row_ids_path_for(index_path: Path) -> Path:
    """The face id of every row of the vectors file (-1 for a removed row) of an approximate index."""
    return index_path.with_name(index_path.name + ".ids.npy")


class FaissIndex:
    """A persistent index of one model's embeddings. Changes live in memory until save().

    fresh=True starts empty without reading the files at path (they are replaced at the next save): how
    `facetrace index rebuild` recovers from a corrupt index or one made by another model. expected_count (for a
    fresh or new index) picks the structure for that many faces up front instead of switching at a later save.
    structure="exact" or "ivf" forces one structure (nlist, nprobe and rerank tune the approximate one; nprobe and
    rerank also apply to a stored approximate index when reopened). code overrides the compressed code of a new
    approximate structure (a faiss index_factory code such as "SQ8" or "PQ16x4fs"; default code_for_dim(dim)).
    background_restructure=True makes the switch save() decides on (structure="auto") run in a background thread:
    searches, adds and removes go on against the current structure meanwhile and are replayed onto the new one
    before it takes over; settle() waits for it. open_index() turns it on; a long-lived server never stops
    answering while a gallery that crossed the size bound is trained (110 s for 1M x 512 on 2 cores).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        model_id: str,
        dim: int,
        *,
        fresh: bool = False,
        expected_count: int | None = None,
        structure: str = "auto",
        nlist: int | None = None,
        nprobe: int | None = None,
        rerank: int | None = None,
        code: str | None = None,
        background_restructure: bool = False,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        if structure not in STRUCTURE_CHOICES:
            raise ValueError(f"structure must be one of {', '.join(STRUCTURE_CHOICES)}, got {structure!r}")
        for name, value in (("nlist", nlist), ("nprobe", nprobe), ("rerank", rerank)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        self._path = Path(path)
        self._meta_path = meta_path_for(self._path)
        self._model_id = model_id
        self._dim = int(dim)
        self._lock = threading.RLock()
        self._catalog_fingerprint: str | None = None
        self._choice = structure
        self._nlist = nlist
        if code is not None:
            _check_code(code, int(dim))
        self._code = code
        self._background = background_restructure
        # A background restructure: its thread, and the changes made since its snapshot (replayed before the swap).
        self._builder: threading.Thread | None = None
        self._journal: list[tuple[str, IdArray, FloatArray | None]] | None = None
        self._build_error: BaseException | None = None
        self._store: _ExactStore | _IvfStore
        if not fresh and (self._path.exists() or self._meta_path.exists()):
            self._store = self._load()
        else:
            self._store = self._new_store(self._initial_structure(expected_count or 0, nprobe, rerank))
        if isinstance(self._store, _IvfStore):
            self._store.tune(nprobe=nprobe, rerank=rerank)

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
    def structure(self) -> Structure:
        """What this index holds now (an approximate one reports its lists, probes and re-ranking depth)."""
        return self._store.structure

    @property
    def trained(self) -> bool:
        """False while an approximate index has too few vectors to train (it then searches exactly)."""
        return self._store.trained

    @property
    def catalog_fingerprint(self) -> str | None:
        """What the catalog looked like when this index was last synchronised (saved in the sidecar)."""
        return self._catalog_fingerprint

    @catalog_fingerprint.setter
    def catalog_fingerprint(self, value: str | None) -> None:
        self._catalog_fingerprint = value

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return (
            f"FaissIndex(path={str(self._path)!r}, model_id={self._model_id!r}, dim={self._dim}, count={len(self)}, "
            f"structure={self.structure.describe()!r})"
        )

    def tune(self, *, nprobe: int | None = None, rerank: int | None = None) -> None:
        """Change an approximate index's search depth (no effect on an exact one); not persisted unless saved."""
        with self._lock:
            if isinstance(self._store, _IvfStore):
                self._store.tune(nprobe=nprobe, rerank=rerank)

    def memory_bytes(self) -> int:
        """Estimated RAM held by the index (not counting the memory-mapped vectors file of an approximate index)."""
        with self._lock:
            return self._store.memory_bytes()

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        vectors = check_vectors(vectors, self._dim)
        ids = check_ids(ids, vectors.shape[0])
        ids, vectors = last_occurrence(ids, vectors)
        if ids.size == 0:
            return
        with self._lock:
            self._store.add(ids, vectors)
            if self._journal is not None:
                self._journal.append(("add", ids.copy(), vectors.copy()))

    def remove(self, ids: IdArray) -> int:
        ids = check_ids(ids)
        if ids.size == 0:
            return 0
        with self._lock:
            removed = self._store.remove(ids)
            if self._journal is not None:
                self._journal.append(("remove", ids.copy(), None))
            return removed

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        queries = check_vectors(queries, self._dim, what="queries")
        k = check_k(k)
        with self._lock:
            raw_similarities, raw_ids = self._store.search(queries, k)
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
            return np.sort(self._store.ids())

    def restructure(self, structure: str | None = None, *, background: bool = False) -> Structure:
        """Move every vector into the structure for the current size (or the one named: "exact" or "ivf").

        An approximate target is trained on a sample of the vectors at once. Nothing is written until save().
        background=True returns at once and builds the new structure in a thread (see the class docstring); the
        structure it returns is the one being built. One restructure at a time: a second call waits for the first.
        """
        self._wait_for_builder()
        with self._lock:
            choice = structure or self._choice
            if choice not in STRUCTURE_CHOICES:
                raise ValueError(f"structure must be one of {', '.join(STRUCTURE_CHOICES)}, got {choice!r}")
            target = self._structure_for(choice, len(self))
            ids, vectors = self._store.export()
            if not background:
                self._swap_in(self._build_store(target, ids, vectors), structure)
                return target
            self._journal = []
            self._build_error = None
            self._builder = threading.Thread(
                target=self._build_in_background,
                args=(target, ids, vectors, structure),
                name=f"faiss-restructure-{self._path.name}",
                daemon=True,
            )
            self._builder.start()
            logger.info(
                "restructuring %s (%d vectors) to %s in the background", self._path, ids.size, target.describe()
            )
            return target

    @property
    def restructuring(self) -> bool:
        """Whether a background restructure is running."""
        builder = self._builder
        return builder is not None and builder.is_alive()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for a background restructure to finish (True when none is left running). A failed one is logged and
        left the current structure in place; its error is raised here once."""
        if not self._wait_for_builder(timeout):
            return False
        error, self._build_error = self._build_error, None
        if error is not None:
            raise VectorIndexError(f"{self._path}: the background restructure failed: {error}") from error
        return True

    def _wait_for_builder(self, timeout: float | None = None) -> bool:
        builder = self._builder
        if builder is not None and builder is not threading.current_thread():
            builder.join(timeout)
            return not builder.is_alive()
        return True

    def _build_store(self, target: Structure, ids: IdArray, vectors: FloatArray) -> _ExactStore | _IvfStore:
        store = self._new_store(target)
        if ids.size:
            store.add(ids, vectors)
        if isinstance(store, _IvfStore) and not store.trained and len(store) >= store.min_train_points():
            store.train()
        return store

    def _swap_in(self, store: _ExactStore | _IvfStore, structure: str | None) -> None:
        self._store = store
        if structure is not None:
            self._choice = structure
        logger.info("restructured %s (%d vectors) to %s", self._path, len(self), store.structure.describe())

    def _build_in_background(self, target: Structure, ids: IdArray, vectors: FloatArray, structure: str | None) -> None:
        try:
            # faiss releases the GIL while it trains and encodes: searches on the current store go on meanwhile.
            store = self._build_store(target, ids, vectors)
            del ids, vectors
            with self._lock:
                for operation, changed_ids, changed_vectors in self._journal or []:
                    if operation == "add":
                        assert changed_vectors is not None
                        store.add(changed_ids, changed_vectors)
                    else:
                        store.remove(changed_ids)
                self._swap_in(store, structure)
        except BaseException as exc:  # kept for settle(); the current structure stays in service
            logger.exception("background restructure of %s failed", self._path)
            self._build_error = exc
        finally:
            with self._lock:
                self._journal = None
                self._builder = None

    def save(self) -> None:
        """Write the index files and the sidecar atomically: a crash leaves the previous set, never a half-written one.

        With structure="auto", a gallery that has crossed the size threshold is restructured first.
        """
        with self._lock:
            self._switch_if_outgrown()
            self._path.parent.mkdir(parents=True, exist_ok=True)
            store = self._store
            targets = store.files(self._path)
            with _temporary_siblings([target for target, _ in targets] + [self._meta_path]) as temps:
                file_bytes: dict[str, int] = {}
                for (target, write), tmp in zip(targets, temps, strict=False):
                    write(tmp)
                    _fsync_file(tmp)
                    file_bytes[_file_key(self._path, target)] = tmp.stat().st_size
                meta: dict[str, Any] = {
                    "format_version": FORMAT_VERSION,
                    "model_id": self._model_id,
                    "dim": self._dim,
                    "count": len(store),
                    "structure": store.structure.describe(),
                    "choice": self._choice,
                    "file_bytes": file_bytes.get("index", 0),
                    "catalog_fingerprint": self._catalog_fingerprint,
                    **store.meta(),
                }
                for key, size in file_bytes.items():
                    if key != "index":
                        meta[f"{key}_file_bytes"] = size
                if isinstance(store, _IvfStore) and "vectors_file_bytes" not in meta:
                    # A vectors file kept as it was (nothing appended) is described by its current size.
                    meta["vectors_file_bytes"] = vectors_path_for(self._path).stat().st_size
                meta_tmp = temps[-1]
                meta_tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
                _fsync_file(meta_tmp)
                # The data files first: if the process dies between the renames, the old sidecar's counts and file
                # sizes no longer match and the next open says to rebuild instead of serving stale ids.
                for (target, _), tmp in zip(targets, temps, strict=False):
                    os.replace(tmp, target)
                os.replace(meta_tmp, self._meta_path)
            if isinstance(store, _ExactStore):
                for leftover in (vectors_path_for(self._path), row_ids_path_for(self._path)):
                    leftover.unlink(missing_ok=True)
            else:
                store.saved(vectors_path_for(self._path))
            _fsync_directory(self._path.parent)
        logger.debug("saved %d vectors of %s to %s", meta["count"], self._model_id, self._path)

    # -- structure ----------------------------------------------------------------------------------------------

    def _initial_structure(self, expected_count: int, nprobe: int | None, rerank: int | None) -> Structure:
        if self._choice == "exact":
            return Structure("exact")
        if self._choice == "ivf":
            # Without a size to go by, nlist is left to training time (4 * sqrt of the count then).
            lists = self._nlist or (nlist_for(expected_count) if expected_count else 0)
            return Structure(
                "ivf",
                nlist=lists,
                code=self._code or code_for_dim(self._dim),
                nprobe=nprobe or (nprobe_for(lists) if lists else 0),
                rerank=rerank or DEFAULT_RERANK,
            )
        chosen = structure_for_size(expected_count, self._dim)
        if chosen.kind == "ivf":
            return approximate_structure(
                expected_count, self._dim, nlist=self._nlist, nprobe=nprobe, rerank=rerank, code=self._code
            )
        return chosen

    def _structure_for(self, choice: str, count: int) -> Structure:
        current = self._store.structure
        keep = {"nprobe": current.nprobe or None, "rerank": current.rerank or None} if current.kind == "ivf" else {}
        if choice == "exact" or (choice == "auto" and count < APPROXIMATE_FROM):
            return Structure("exact")
        return approximate_structure(max(count, 1), self._dim, nlist=self._nlist, code=self._code, **keep)

    def _switch_if_outgrown(self) -> None:
        if self._choice != "auto" or self.restructuring:
            return
        count = len(self)
        kind = self._store.structure.kind
        if (kind == "exact" and count >= APPROXIMATE_FROM) or (kind == "ivf" and count < EXACT_BELOW):
            self.restructure(background=self._background)

    def _new_store(self, structure: Structure) -> _ExactStore | _IvfStore:
        if structure.kind == "exact":
            return _ExactStore(self._dim)
        return _IvfStore(self._dim, structure)

    # -- loading ------------------------------------------------------------------------------------------------

    def _load(self) -> _ExactStore | _IvfStore:
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
        _check_size(self._path, meta.get("file_bytes"))
        try:
            index = faiss.read_index(str(self._path))
        except RuntimeError as exc:
            raise VectorIndexError(f"{self._path}: index file is unreadable ({exc}); {REBUILD_HINT}") from exc
        if index.d != self._dim:
            raise VectorIndexError(f"{self._path}: not a facetrace index of dimension {self._dim}; {REBUILD_HINT}")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise VectorIndexError(f"{self._path}: index does not use inner-product similarity; {REBUILD_HINT}")
        if self._choice == "auto":
            self._choice = str(meta.get("choice", "auto"))
        fingerprint = meta.get("catalog_fingerprint")
        self._catalog_fingerprint = None if fingerprint is None else str(fingerprint)
        layout = meta.get("layout", "exact")
        store: _ExactStore | _IvfStore
        if layout == "exact":
            if not isinstance(index, faiss.IndexIDMap2):
                raise VectorIndexError(f"{self._path}: not a facetrace index of dimension {self._dim}; {REBUILD_HINT}")
            store = _ExactStore(self._dim, index)
        elif layout == "ivf":
            store = self._load_ivf(meta, index, VECTORS_DTYPE_BY_FORMAT[int(meta["format_version"])])
        else:
            raise VectorIndexError(f"{self._meta_path}: unknown layout {layout!r}; {REBUILD_HINT}")
        if len(store) != int(meta["count"]):
            raise VectorIndexError(
                f"{self._path}: holds {len(store)} vectors but its sidecar says {meta['count']}; {REBUILD_HINT}"
            )
        return store

    def _load_ivf(self, meta: dict[str, Any], index: Any, dtype: type[np.floating[Any]]) -> _IvfStore:
        vectors_path = vectors_path_for(self._path)
        ids_path = row_ids_path_for(self._path)
        for path, key in ((vectors_path, "vectors_file_bytes"), (ids_path, "ids_file_bytes")):
            if not path.exists():
                raise VectorIndexError(
                    f"{path}: missing, but the sidecar describes an approximate index; {REBUILD_HINT}"
                )
            _check_size(path, meta.get(key))
        try:
            vectors = np.load(vectors_path, mmap_mode="r")
            row_ids = np.array(np.load(ids_path), dtype=np.int64)
        except (OSError, ValueError) as exc:
            raise VectorIndexError(f"{self._path}: vectors or ids file is unreadable ({exc}); {REBUILD_HINT}") from exc
        if vectors.dtype != dtype or vectors.ndim != 2 or vectors.shape[1] != self._dim:
            raise VectorIndexError(
                f"{vectors_path}: not {np.dtype(dtype).name} vectors of dimension {self._dim} (format "
                f"{meta['format_version']}); {REBUILD_HINT}"
            )
        if row_ids.ndim != 1 or row_ids.shape[0] != vectors.shape[0]:
            raise VectorIndexError(f"{ids_path}: {row_ids.shape} ids for {vectors.shape[0]} rows; {REBUILD_HINT}")
        structure = Structure(
            "ivf",
            nlist=int(meta.get("nlist", 0)),
            code=str(meta.get("code", code_for_dim(self._dim))),
            nprobe=int(meta.get("nprobe", 0)),
            rerank=int(meta.get("rerank", DEFAULT_RERANK)),
        )
        ivf = None
        if meta.get("trained"):
            ivf = index
            if not isinstance(ivf, faiss.IndexIVF) or not ivf.is_trained:
                raise VectorIndexError(f"{self._path}: not a trained IVF index; {REBUILD_HINT}")
            live = int((row_ids >= 0).sum())
            if int(ivf.ntotal) != live:
                raise VectorIndexError(
                    f"{self._path}: IVF holds {ivf.ntotal} vectors but {live} rows are live; {REBUILD_HINT}"
                )
        return _IvfStore(self._dim, structure, base=vectors, row_ids=row_ids, ivf=ivf)

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
        if meta["format_version"] not in VECTORS_DTYPE_BY_FORMAT:
            readable = " or ".join(str(version) for version in VECTORS_DTYPE_BY_FORMAT)
            raise VectorIndexError(
                f"{self._meta_path}: format version {meta['format_version']} is not {readable}, the ones this "
                f"facetrace reads; {REBUILD_HINT}"
            )
        return cast(dict[str, Any], meta)


class _ExactStore:
    """Every vector in an IndexIDMap2 over IndexFlatIP, in RAM and in the one index file."""

    def __init__(self, dim: int, index: Any = None) -> None:
        self._dim = dim
        self._index: Any = (
            index if index is not None else faiss.index_factory(dim, EXACT_STRUCTURE, faiss.METRIC_INNER_PRODUCT)
        )
        self.structure = Structure("exact")
        self.trained = True

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        # Removing from a flat index rewrites it, so only pay that when some ids really are replaced
        # (a rebuild from the catalog adds only new ids).
        if self._index.ntotal and np.isin(ids, self.ids()).any():
            self._index.remove_ids(ids)
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: IdArray) -> int:
        return int(self._index.remove_ids(ids))

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        similarities, ids = self._index.search(queries, k)
        return cast(FloatArray, similarities), cast(IdArray, ids)

    def ids(self) -> IdArray:
        return cast(IdArray, faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False))

    def export(self) -> tuple[IdArray, FloatArray]:
        count = len(self)
        if count == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self._dim), dtype=np.float32)
        vectors = np.asarray(self._index.index.reconstruct_n(0, count), dtype=np.float32)
        return self.ids(), vectors

    def memory_bytes(self) -> int:
        # Vectors, the id list and IndexIDMap2's reverse map (a hash map, about 32 bytes an entry).
        return len(self) * (4 * self._dim + 8 + 32)

    def files(self, path: Path) -> list[tuple[Path, Any]]:
        return [(path, lambda tmp: faiss.write_index(self._index, str(tmp)))]

    def meta(self) -> dict[str, Any]:
        return {"layout": "exact"}


class _AppendedRows:
    """Rows appended since the last save, in fixed-size float16 blocks: growth never copies what is already held."""

    def __init__(self, dim: int) -> None:
        self._dim = dim
        self._blocks: list[npt.NDArray[np.float16]] = []
        self.count = 0

    @property
    def nbytes(self) -> int:
        return sum(block.nbytes for block in self._blocks)

    def append(self, vectors: FloatArray) -> None:
        done = 0
        while done < vectors.shape[0]:
            offset = self.count % ROW_BLOCK
            if offset == 0:
                self._blocks.append(np.empty((ROW_BLOCK, self._dim), dtype=VECTORS_DTYPE))
            take = min(ROW_BLOCK - offset, vectors.shape[0] - done)
            self._blocks[-1][offset : offset + take] = vectors[done : done + take]
            done += take
            self.count += take

    def take(self, rows: IdArray, out: npt.NDArray[Any]) -> None:
        """Copy these rows (0-based within the appended ones, any order) into out."""
        blocks = rows // ROW_BLOCK
        first, last = int(blocks.min()), int(blocks.max())
        if first == last:
            out[:] = self._blocks[first][rows - first * ROW_BLOCK]
            return
        for block in np.unique(blocks):
            chosen = blocks == block
            out[chosen] = self._blocks[int(block)][rows[chosen] - int(block) * ROW_BLOCK]


class _IvfStore:
    """IVF codes in RAM, full vectors (float16) in rows: a memory-mapped base file plus rows appended since.

    Rows are never reused: removing a face marks its row -1 in row_ids and drops it from the IVF; an upsert removes
    and appends. Rows are IVF labels, so the IVF never needs relabelling; save() compacts when a quarter of the rows
    are dead. The row-id array grows by doubling and appended vectors go into fixed-size blocks, so adding n faces in
    batches costs O(n), not O(n^2).
    """

    def __init__(
        self,
        dim: int,
        structure: Structure,
        *,
        base: npt.NDArray[Any] | None = None,
        row_ids: IdArray | None = None,
        ivf: Any = None,
    ) -> None:
        self._dim = dim
        self.structure = structure
        # The base file is float16 (format 2) or float32 (format 1, converted to float16 at the next save).
        self._base: npt.NDArray[Any] = base if base is not None else np.zeros((0, dim), dtype=VECTORS_DTYPE)
        self._extra = _AppendedRows(dim)
        self._ids_buffer: IdArray = row_ids if row_ids is not None else np.zeros(0, dtype=np.int64)
        self._rows = int(self._ids_buffer.shape[0])
        self._live = int((self._row_ids >= 0).sum())
        # No id above this was ever added: an add of only larger ids (a rebuild in id order) skips the upsert check.
        self._max_id = int(self._row_ids.max()) if self._rows else -1
        self._ivf = ivf
        # True when the vectors file on disk does not hold every row (a new store, or rows appended since).
        self._vectors_dirty = base is None
        if ivf is not None:
            self._apply_nprobe()

    @property
    def trained(self) -> bool:
        return self._ivf is not None

    def __len__(self) -> int:
        return self._live

    @property
    def _row_ids(self) -> IdArray:
        """The face id of every row (-1 for a dead one): a view of the first _rows entries of the growable buffer."""
        return self._ids_buffer[: self._rows]

    def tune(self, *, nprobe: int | None = None, rerank: int | None = None) -> None:
        changes: dict[str, int] = {}
        if nprobe:
            changes["nprobe"] = int(nprobe)
        if rerank:
            changes["rerank"] = int(rerank)
        if changes:
            self.structure = Structure(
                "ivf",
                nlist=self.structure.nlist,
                code=self.structure.code,
                nprobe=changes.get("nprobe", self.structure.nprobe),
                rerank=changes.get("rerank", self.structure.rerank),
            )
            self._apply_nprobe()

    def _apply_nprobe(self) -> None:
        if self._ivf is not None:
            self._ivf.nprobe = min(int(self._ivf.nlist), self.structure.nprobe or nprobe_for(int(self._ivf.nlist)))

    def min_train_points(self) -> int:
        return TRAIN_POINTS_PER_LIST * (self.structure.nlist or nlist_for(self._live))

    # -- rows ---------------------------------------------------------------------------------------------------

    def _append(self, ids: IdArray, vectors: FloatArray) -> None:
        needed = self._rows + ids.shape[0]
        if needed > self._ids_buffer.shape[0]:
            grown = np.empty(max(needed, 2 * self._ids_buffer.shape[0], 1024), dtype=np.int64)
            grown[: self._rows] = self._row_ids
            self._ids_buffer = grown
        self._ids_buffer[self._rows : needed] = ids
        self._rows = needed
        self._extra.append(vectors)
        self._max_id = max(self._max_id, int(ids.max()))
        self._vectors_dirty = True

    def vectors_at(self, rows: IdArray, dtype: type[np.floating[Any]] = np.float32) -> npt.NDArray[Any]:
        """Full vectors of these rows (any order, repeats allowed), as dtype (float32 for arithmetic)."""
        count_base = self._base.shape[0]
        out = np.empty((rows.shape[0], self._dim), dtype=dtype)
        if rows.size == 0:
            return out
        in_base = rows < count_base
        if in_base.all():
            out[:] = self._base[rows]
        elif not in_base.any():
            self._extra.take(rows - count_base, out)
        else:
            out[in_base] = self._base[rows[in_base]]
            appended = np.empty((int((~in_base).sum()), self._dim), dtype=dtype)
            self._extra.take(rows[~in_base] - count_base, appended)
            out[~in_base] = appended
        return out

    def _all_vectors(self, dtype: type[np.floating[Any]] = np.float32) -> Iterator[tuple[IdArray, npt.NDArray[Any]]]:
        """(rows, vectors) of every row, dead ones included, in chunks."""
        for start in range(0, self._rows, ROW_BLOCK):
            rows = np.arange(start, min(start + ROW_BLOCK, self._rows), dtype=np.int64)
            yield rows, self.vectors_at(rows, dtype)

    # -- the port -----------------------------------------------------------------------------------------------

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        if self._live and int(ids.min()) <= self._max_id:
            self.remove(ids)
        first = self._rows
        self._append(ids, vectors)
        self._live += int(ids.size)
        if self._ivf is not None:
            self._ivf.add_with_ids(vectors, np.arange(first, first + ids.size, dtype=np.int64))
        elif self._live >= self.min_train_points():
            self.train()

    def remove(self, ids: IdArray) -> int:
        rows = np.flatnonzero(np.isin(self._row_ids, ids)).astype(np.int64)
        if rows.size == 0:
            return 0
        self._row_ids[rows] = -1
        self._live -= int(rows.size)
        if self._ivf is not None:
            self._ivf.remove_ids(rows)
        return int(rows.size)

    def ids(self) -> IdArray:
        return self._row_ids[self._row_ids >= 0]

    def export(self) -> tuple[IdArray, FloatArray]:
        live = np.flatnonzero(self._row_ids >= 0).astype(np.int64)
        return self._row_ids[live].copy(), self.vectors_at(live)

    def train(self) -> None:
        """Train the IVF (coarse centroids and codes) on a seeded sample of the live rows, then encode all of them."""
        live = np.flatnonzero(self._row_ids >= 0).astype(np.int64)
        nlist = self.structure.nlist or nlist_for(live.size)
        nlist = max(1, min(nlist, live.size))
        limit = MAX_TRAIN_POINTS_PER_LIST * nlist
        sample = live if live.size <= limit else np.sort(np.random.default_rng(0).choice(live, limit, replace=False))
        ivf = faiss.index_factory(self._dim, f"IVF{nlist},{self.structure.code}", faiss.METRIC_INNER_PRODUCT)
        if isinstance(ivf, faiss.IndexIVFPQ):
            ivf.pq.cp.max_points_per_centroid = PQ_TRAIN_POINTS_PER_CENTROID
            ivf.pq.cp.niter = PQ_TRAIN_ITERATIONS
            # Polysemous codes only help Hamming pre-filtering, which is not used; training them takes minutes.
            cast(Any, ivf).do_polysemous_training = False
        ivf.train(self.vectors_at(sample))
        for start in range(0, live.size, ROW_BLOCK):
            rows = live[start : start + ROW_BLOCK]
            ivf.add_with_ids(self.vectors_at(rows), rows)
        self._ivf = ivf
        self.structure = Structure(
            "ivf",
            nlist=nlist,
            code=self.structure.code,
            nprobe=min(nlist, self.structure.nprobe or nprobe_for(nlist)),
            rerank=self.structure.rerank or DEFAULT_RERANK,
        )
        self._apply_nprobe()
        logger.info("trained %s on %d of %d vectors", self.structure.factory, sample.size, live.size)

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        if self._ivf is None or self._live == 0:
            return self._scan(queries, k)
        shortlist = max(k, self.structure.rerank)
        similarities = np.full((queries.shape[0], k), MISSING_SIMILARITY, dtype=np.float32)
        found = np.full((queries.shape[0], k), MISSING_ID, dtype=np.int64)
        for start in range(0, queries.shape[0], 256):
            block = queries[start : start + 256]
            _, rows = self._ivf.search(block, shortlist)
            valid = rows >= 0
            safe = np.where(valid, rows, 0)
            candidates = self.vectors_at(safe.ravel()).reshape(block.shape[0], shortlist, self._dim)
            exact = np.einsum("qsd,qd->qs", candidates, block)
            exact[~valid] = MISSING_SIMILARITY
            labels = np.where(valid, self._row_ids[safe], MISSING_ID)
            top_similarities, top_labels = _top_k(exact, labels, k)
            similarities[start : start + block.shape[0]] = top_similarities
            found[start : start + block.shape[0]] = top_labels
        return similarities, found

    def _scan(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        """Exact search over the full vectors (before training)."""
        best_similarities = np.full((queries.shape[0], k), MISSING_SIMILARITY, dtype=np.float32)
        best_ids = np.full((queries.shape[0], k), MISSING_ID, dtype=np.int64)
        for rows, vectors in self._all_vectors():
            similarities = queries @ vectors.T
            labels = np.broadcast_to(self._row_ids[rows], similarities.shape)
            similarities[:, labels[0] < 0] = MISSING_SIMILARITY
            best_similarities, best_ids = _top_k(
                np.hstack([best_similarities, similarities]), np.hstack([best_ids, labels]), k
            )
        return best_similarities, best_ids

    # -- persistence --------------------------------------------------------------------------------------------

    def memory_bytes(self) -> int:
        total = self._ids_buffer.nbytes + self._extra.nbytes
        if not isinstance(self._base, np.memmap):
            total += self._base.nbytes
        ivf = self._ivf
        if ivf is not None:
            # Codes and 8-byte labels in the inverted lists, the coarse centroids, and (PQ) the codebooks.
            total += int(ivf.ntotal) * 8 + int(ivf.nlist) * self._dim * 4
            if isinstance(ivf, faiss.IndexIVFFastScan):
                # Fast-scan lists hold codes in blocks of bbs vectors: the last block of each list is padded.
                lists = cast(Any, ivf).invlists
                blocks = sum(-(-int(lists.list_size(i)) // int(ivf.bbs)) for i in range(int(ivf.nlist)))
                total += blocks * int(ivf.bbs) * int(ivf.code_size)
            else:
                total += int(ivf.ntotal) * int(ivf.code_size)
            pq = getattr(ivf, "pq", None)
            total += int(pq.ksub) * self._dim * 4 if pq is not None else 2 * self._dim * 4
        return total

    def files(self, path: Path) -> list[tuple[Path, Any]]:
        if self._rows and (self._rows - self._live) * 4 > self._rows:
            self._compact()
        files: list[tuple[Path, Any]] = [(path, self._write_index), (row_ids_path_for(path), self._write_row_ids)]
        # A format-1 (float32) base file is rewritten as float16 at its first save.
        if self._vectors_dirty or self._base.dtype != VECTORS_DTYPE or not vectors_path_for(path).exists():
            files.append((vectors_path_for(path), self._write_vectors))
        return files

    def _write_index(self, tmp: Path) -> None:
        # Before training there is no IVF: an empty flat index keeps the index file (and its checks) meaningful.
        faiss.write_index(self._ivf if self._ivf is not None else faiss.IndexFlatIP(self._dim), str(tmp))

    def _write_row_ids(self, tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.save(handle, self._row_ids)

    def _write_vectors(self, tmp: Path) -> None:
        # Streamed through a file handle, not a writable memory map: at 10M faces the file is 10 GB, and mapped dirty
        # pages would count against this process on top of the rows it holds.
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(VECTORS_DTYPE)),
            "fortran_order": False,
            "shape": (self._rows, self._dim),
        }
        with tmp.open("wb") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            for _, vectors in self._all_vectors(VECTORS_DTYPE):
                handle.write(np.ascontiguousarray(vectors).tobytes())

    def saved(self, vectors_path: Path) -> None:
        """After a save: serve the rows from the (new) memory-mapped file and drop the in-RAM copies."""
        self._base = np.load(vectors_path, mmap_mode="r")
        self._extra = _AppendedRows(self._dim)
        self._vectors_dirty = False

    def _compact(self) -> None:
        """Drop dead rows: re-number the live ones and re-add them to the (already trained) IVF, a chunk at a time."""
        live = np.flatnonzero(self._row_ids >= 0).astype(np.int64)
        extra = _AppendedRows(self._dim)
        if self._ivf is not None:
            self._ivf.reset()
        for start in range(0, live.size, ROW_BLOCK):
            vectors = self.vectors_at(live[start : start + ROW_BLOCK])
            extra.append(vectors)
            if self._ivf is not None:
                self._ivf.add_with_ids(vectors, np.arange(start, start + vectors.shape[0], dtype=np.int64))
        self._ids_buffer = self._row_ids[live].copy()
        self._rows = int(live.size)
        self._base = np.zeros((0, self._dim), dtype=VECTORS_DTYPE)
        self._extra = extra
        self._vectors_dirty = True

    def meta(self) -> dict[str, Any]:
        return {
            "layout": "ivf",
            "trained": self._ivf is not None,
            "nlist": self.structure.nlist,
            "code": self.structure.code,
            "nprobe": self.structure.nprobe,
            "rerank": self.structure.rerank,
            "rows": self._rows,
            "vectors_dtype": np.dtype(VECTORS_DTYPE).name,
        }


def _top_k(similarities: FloatArray, labels: IdArray, k: int) -> tuple[FloatArray, IdArray]:
    """The k best columns of each row (unordered beyond that; FaissIndex.search orders them), padded if too few."""
    width = similarities.shape[1]
    if width < k:
        pad = k - width
        similarities = np.hstack([similarities, np.full((similarities.shape[0], pad), MISSING_SIMILARITY, np.float32)])
        labels = np.hstack([labels, np.full((labels.shape[0], pad), MISSING_ID, np.int64)])
        return similarities.astype(np.float32, copy=False), labels
    if width == k:
        return similarities, labels
    picked = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    return np.take_along_axis(similarities, picked, axis=1), np.take_along_axis(labels, picked, axis=1)


def _file_key(index_path: Path, target: Path) -> str:
    if target == index_path:
        return "index"
    return "vectors" if target == vectors_path_for(index_path) else "ids"


def _check_code(code: str, dim: int) -> None:
    """Refuse a compressed code faiss cannot build at this dimension now, not at training time."""
    try:
        faiss.index_factory(dim, f"IVF1,{code}", faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"code {code!r} is not a faiss IVF code for dimension {dim}") from exc


def _check_size(path: Path, recorded: object) -> None:
    size = path.stat().st_size
    if recorded is not None and int(cast(int, recorded)) != size:
        raise VectorIndexError(
            f"{path}: file is {size} bytes but was saved as {recorded} (truncated or replaced); {REBUILD_HINT}"
        )


@contextmanager
def _temporary_siblings(targets: list[Path]) -> Iterator[list[Path]]:
    """One fresh temp path beside each target (os.replace is atomic only within one file system); removed on error."""
    temps: list[Path] = []
    try:
        for target in targets:
            handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(handle)
            temps.append(Path(name))
        yield temps
    finally:
        for tmp in temps:
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
