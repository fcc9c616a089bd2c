"""FaissIndex: the VectorIndex adapter over FAISS, composing the structures (stores), their files and the switch
between them (see the facetrace.index.faiss package docstring for the two structures)."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.core.ports import IdArray
from facetrace.core.types import FloatArray
from facetrace.index.faiss import files
from facetrace.index.faiss.sizing import (
    DEFAULT_TARGET_RECALL,
    STRUCTURE_CHOICES,
    Structure,
    initial_structure,
    outgrown,
    structure_for_count,
)
from facetrace.index.faiss.stores import ALL_THREADS, IvfStore, Store, build_store, check_code, new_store
from facetrace.index.faiss.switching import BackgroundSwitch
from facetrace.index.faiss.tuning import Tuning
from facetrace.index.vectors import (
    MISSING_ID,
    MISSING_SIMILARITY,
    check_ids,
    check_k,
    check_vectors,
    last_occurrence,
)

logger = logging.getLogger(__name__)


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
    target_recall: an approximate structure, when trained (and at a save once it holds twice the faces it was tuned
    at), measures its recall@1 against exact search on noisy copies of its own vectors, keeps the smallest nprobe and
    re-ranking depth that reach it, and times single-query searches there on one thread and on all to keep the
    faster (facetrace.index.faiss.tuning); an nprobe or rerank given here or to tune() is kept instead (and
    measured). describe() reports the operating point; search() applies the thread count itself.
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
        target_recall: float = DEFAULT_TARGET_RECALL,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        if structure not in STRUCTURE_CHOICES:
            raise ValueError(f"structure must be one of {', '.join(STRUCTURE_CHOICES)}, got {structure!r}")
        for name, value in (("nlist", nlist), ("nprobe", nprobe), ("rerank", rerank)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if not 0.0 < target_recall <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
        self._path = Path(path)
        self._model_id = model_id
        self._dim = int(dim)
        self._lock = threading.RLock()
        self._choice = structure
        self._nlist = nlist
        if code is not None:
            check_code(code, int(dim))
        self._code = code
        self._background = background_restructure
        self._tuning = Tuning(float(target_recall), int(nprobe) if nprobe else None, int(rerank) if rerank else None)
        self._switch = BackgroundSwitch(self._lock, self._path, self._dim)
        self._store: Store
        if not fresh and (self._path.exists() or files.meta_path_for(self._path).exists()):
            meta, self._store = files.load(self._path, self._model_id, self._dim)
            if self._choice == "auto":
                self._choice = str(meta.get("choice", "auto"))
            if isinstance(self._store, IvfStore):
                self._tuning = _kept_given(self._tuning, self._store)
                self._store.tuning = self._tuning
        else:
            self._store = new_store(
                self._dim,
                initial_structure(
                    self._choice,
                    expected_count or 0,
                    self._dim,
                    nlist=self._nlist,
                    code=self._code,
                    nprobe=nprobe,
                    rerank=rerank,
                ),
                self._tuning,
            )
        if isinstance(self._store, IvfStore):
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

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return (
            f"FaissIndex(path={str(self._path)!r}, model_id={self._model_id!r}, dim={self._dim}, count={len(self)}, "
            f"structure={self.structure.describe()!r})"
        )

    def tune(self, *, nprobe: int | None = None, rerank: int | None = None) -> None:
        """Change an approximate index's search depth (no effect on an exact one); not persisted unless saved.
        A given nprobe or rerank is kept from now on, also by a later restructure or re-tuning, instead of the
        measured one."""
        with self._lock:
            if nprobe:
                self._tuning = dataclasses.replace(self._tuning, nprobe=int(nprobe))
            if rerank:
                self._tuning = dataclasses.replace(self._tuning, rerank=int(rerank))
            if isinstance(self._store, IvfStore):
                self._store.tune(nprobe=nprobe, rerank=rerank)

    @property
    def target_recall(self) -> float:
        return self._tuning.target_recall

    @property
    def single_query_threads(self) -> int:
        """faiss's thread count for a one-query search, as the approximate structure measured it (the faster of one
        and all threads; FaissIndex.search applies it itself). An exact structure uses all threads."""
        with self._lock:
            store = self._store
            return store.single_query_threads if isinstance(store, IvfStore) else ALL_THREADS

    def describe(self) -> dict[str, Any]:
        """The structure, its size and (approximate, trained) its measured operating point: nprobe, recall@1
        against exact search, how many queries measured it and the p50 of a single-query search (for stats)."""
        with self._lock:
            store = self._store
            return {
                "backend": "faiss",
                "structure": store.structure.describe(),
                "count": len(store),
                "trained": store.trained,
                "target_recall": self._tuning.target_recall,
                "operating_point": store.operating_point if isinstance(store, IvfStore) else None,
                "memory_bytes": store.memory_bytes(),
            }

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
            self._switch.record_add(ids, vectors)

    def remove(self, ids: IdArray) -> int:
        ids = check_ids(ids)
        if ids.size == 0:
            return 0
        with self._lock:
            removed = self._store.remove(ids)
            self._switch.record_remove(ids)
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

    # -- structure ----------------------------------------------------------------------------------------------

    def restructure(self, structure: str | None = None, *, background: bool = False) -> Structure:
        """Move every vector into the structure for the current size (or the one named: "exact" or "ivf").

        An approximate target is trained on a sample of the vectors at once. Nothing is written until save().
        background=True returns at once and builds the new structure in a thread (see the class docstring); the
        structure it returns is the one being built. One restructure at a time: a second call waits for the first.
        """
        self._switch.wait()
        with self._lock:
            choice = structure or self._choice
            if choice not in STRUCTURE_CHOICES:
                raise ValueError(f"structure must be one of {', '.join(STRUCTURE_CHOICES)}, got {choice!r}")
            target = structure_for_count(
                choice, len(self), self._dim, self._store.structure, nlist=self._nlist, code=self._code
            )
            ids, vectors = self._store.export()
            if not background:
                self._swap_in(build_store(self._dim, target, ids, vectors, self._tuning), structure)
                return target
            self._switch.start(target, ids, vectors, self._tuning, lambda store: self._swap_in(store, structure))
            logger.info(
                "restructuring %s (%d vectors) to %s in the background", self._path, ids.size, target.describe()
            )
            return target

    @property
    def restructuring(self) -> bool:
        """Whether a background restructure is running."""
        return self._switch.running

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for a background restructure to finish (True when none is left running). A failed one is logged and
        left the current structure in place; its error is raised here once."""
        return self._switch.settle(timeout)

    def _swap_in(self, store: Store, structure: str | None) -> None:
        self._store = store
        if structure is not None:
            self._choice = structure
        logger.info("restructured %s (%d vectors) to %s", self._path, len(self), store.structure.describe())

    def _switch_if_outgrown(self) -> None:
        if self._choice != "auto" or self.restructuring:
            return
        if outgrown(self._store.structure, len(self)):
            self.restructure(background=self._background)

    # -- files --------------------------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the index files and the sidecar atomically: a crash leaves the previous set, never a half-written one.

        With structure="auto", a gallery that has crossed the size threshold is restructured first; an approximate
        one that has grown to twice the size it was tuned at (a rebuild's, which trains on its first batches, or one
        that kept growing) is tuned again first (facetrace.index.faiss.tuning).
        """
        with self._lock:
            self._switch_if_outgrown()
            if isinstance(self._store, IvfStore) and not self.restructuring and self._store.due_retune():
                self._store.self_tune()
            files.save(self._path, self._store, model_id=self._model_id, dim=self._dim, choice=self._choice)


def _kept_given(tuning: Tuning, store: IvfStore) -> Tuning:
    """The tuning with the search depth a caller gave (saved with the index) kept, unless given again now: a later
    restructure or re-tuning keeps it too."""
    point = store.operating_point or {}
    if point.get("source") != "given":
        return tuning
    # Sidecars written before the re-ranking depth was tuned name no field: the caller gave the nprobe.
    given = point.get("given", ["nprobe"])
    kept = {}
    for name in ("nprobe", "rerank"):
        value = getattr(store.structure, name)
        if name in given and value and not getattr(tuning, name):
            kept[name] = int(value)
    return dataclasses.replace(tuning, **kept)
