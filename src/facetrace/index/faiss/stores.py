"""The two FAISS structures in memory: ExactStore (a flat index) and IvfStore (IVF codes plus the full vectors, for
re-ranking), each adding, removing, searching and describing itself; IvfStore also trains and compacts.

A store knows what its files hold (writers() serialises it, by file role) but not where they live or what the
sidecar says: that is facetrace.index.faiss.files.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias, cast

import faiss
import numpy as np
import numpy.typing as npt

from facetrace.core.ports import IdArray
from facetrace.core.types import FloatArray
from facetrace.index.faiss.sizing import DEFAULT_RERANK, EXACT_STRUCTURE, Structure, nlist_for, nprobe_for
from facetrace.index.faiss.tuning import (
    LATENCY_QUERIES,
    TUNE_QUERIES,
    TUNE_SEED,
    Depth,
    Sample,
    Tuning,
    choose_depth,
    due_retune,
    exact_top1,
    fastest,
    noisy_copies,
    p50_latencies_ms,
    recall_at_1,
)
from facetrace.index.threads import query_thread_cap
from facetrace.index.vectors import MISSING_ID, MISSING_SIMILARITY

logger = logging.getLogger(__name__)

# The full vectors of an approximate index, in RAM and in its vectors file (format 2).
VECTORS_DTYPE = np.float16
TRAIN_POINTS_PER_LIST = 40
MAX_TRAIN_POINTS_PER_LIST = 40
# PQ codebooks: 64 points per centroid and 10 k-means iterations (faiss's 256 and 25 take minutes at dim 512).
PQ_TRAIN_POINTS_PER_CENTROID = 64
PQ_TRAIN_ITERATIONS = 10
# Rows appended since the last save are held in float16 blocks of this many rows; also the chunk of bulk passes.
ROW_BLOCK = 65_536

# faiss's fast-scan IVF implementations that spread one query's lists over the threads: 14 keeps the best k in a heap
# (faiss's choice up to k = 20), 15 in a reservoir (above).
FAST_SCAN_HEAP_SPREAD = 14
FAST_SCAN_RESERVOIR_SPREAD = 15
FAST_SCAN_HEAP_MAX_K = 20

# Writes one file of a store to the (temporary) path given.
Writer = Callable[[Path], None]
# faiss's OpenMP threads for batches: every core (or OMP_NUM_THREADS), as the process started with.
ALL_THREADS = int(faiss.omp_get_max_threads())


@contextmanager
def omp_threads(count: int) -> Iterator[None]:
    """faiss's OpenMP thread count for the calling thread, for the duration (libgomp keeps it per thread, so other
    threads searching or training meanwhile are not affected), never above the calling thread's cap
    (index/threads.py: a serving pool's worker queries on one thread)."""
    cap = query_thread_cap()
    if cap is not None:
        count = min(count, cap)
    previous = int(faiss.omp_get_max_threads())
    if count == previous:
        yield
        return
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def new_store(dim: int, structure: Structure, tuning: Tuning | None = None) -> Store:
    """An empty store of this structure (an approximate one tunes itself to tuning when it trains)."""
    if structure.kind == "exact":
        return ExactStore(dim)
    return IvfStore(dim, structure, tuning=tuning)


def build_store(
    dim: int, structure: Structure, ids: IdArray, vectors: FloatArray, tuning: Tuning | None = None
) -> Store:
    """A store of this structure holding these vectors (an approximate one trained, and tuned, if there are enough)."""
    store = new_store(dim, structure, tuning)
    if ids.size:
        store.add(ids, vectors)
    if isinstance(store, IvfStore) and not store.trained and len(store) >= store.min_train_points():
        store.train()
    return store


def check_code(code: str, dim: int) -> None:
    """Refuse a compressed code faiss cannot build at this dimension now, not at training time."""
    try:
        faiss.index_factory(dim, f"IVF1,{code}", faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"code {code!r} is not a faiss IVF code for dimension {dim}") from exc


class ExactStore:
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

    def writers(self, *, vectors_on_disk: bool) -> dict[str, Writer]:
        """What a save writes, by file role: the one index file."""
        return {"index": lambda tmp: faiss.write_index(self._index, str(tmp))}

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


class IvfStore:
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
        tuning: Tuning | None = None,
        operating_point: dict[str, Any] | None = None,
    ) -> None:
        self._dim = dim
        self.structure = structure
        self.tuning = tuning or Tuning()
        # The measured operating point of the trained IVF (see facetrace.index.faiss.tuning), as the sidecar holds it.
        self.operating_point = operating_point
        # The queries and exact answers of the last self-tuning (in RAM only), to measure a caller's nprobe cheaply.
        self._sample: Sample | None = None
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
        """Set the search depth; a caller's nprobe or rerank is kept from now on (a later tuning measures, not
        replaces, it)."""
        changes: dict[str, int] = {}
        if nprobe:
            changes["nprobe"] = int(nprobe)
            self.tuning = dataclasses.replace(self.tuning, nprobe=int(nprobe))
        if rerank:
            changes["rerank"] = int(rerank)
            self.tuning = dataclasses.replace(self.tuning, rerank=int(rerank))
        if changes:
            self.structure = dataclasses.replace(
                self.structure,
                nprobe=changes.get("nprobe", self.structure.nprobe),
                rerank=changes.get("rerank", self.structure.rerank),
            )
            self._apply_nprobe()
            if self._ivf is not None:
                self._record_given()

    @property
    def single_query_threads(self) -> int:
        """faiss threads for a single-query search: the faster of one and all, as measured (all until measured)."""
        threads = (self.operating_point or {}).get("threads")
        return min(ALL_THREADS, threads) if isinstance(threads, int) and threads > 0 else ALL_THREADS

    def _record_given(self) -> None:
        """The operating point of a caller's search depth: measured on the last sample if there is one in RAM."""
        assert self._ivf is not None
        depth = Depth(int(self._ivf.nprobe), self.structure.rerank, float("nan"))
        if self._sample is not None:
            similarities, ids = self.search(self._sample.queries, 1)
            depth = dataclasses.replace(depth, recall=recall_at_1(ids[:, 0], similarities[:, 0], self._sample))
        self._record(depth)

    def self_tune(self) -> None:
        """Measure recall@1 against exact search on noisy copies of up to TUNE_QUERIES stored vectors, keep the
        smallest search depth that reaches the target (or the caller's), time single-query searches there on one
        thread and on all, and record the operating point (see facetrace.index.faiss.tuning)."""
        if self._ivf is None or self._live == 0:
            return
        live = np.flatnonzero(self._row_ids >= 0).astype(np.int64)
        count = min(TUNE_QUERIES, live.size)
        rows = np.sort(np.random.default_rng(TUNE_SEED).choice(live, count, replace=False))
        queries = noisy_copies(self.vectors_at(rows))
        truth_ids, truth_similarities = exact_top1(queries, self._all_vectors(), self._row_ids)
        self._sample = Sample(queries, truth_ids, truth_similarities)

        def shortlist_at(nprobe: int, depth: int) -> IdArray:
            assert self._ivf is not None
            self._ivf.nprobe = nprobe
            return self._shortlist(queries, depth)

        def rerank_top1(shortlist: IdArray) -> tuple[FloatArray, IdArray]:
            similarities, ids = self._rerank(queries, shortlist, 1)
            return similarities[:, 0], ids[:, 0]

        depth = choose_depth(int(self._ivf.nlist), self.tuning, self._sample, shortlist_at, rerank_top1)
        self.structure = dataclasses.replace(self.structure, nprobe=depth.nprobe, rerank=depth.rerank)
        self._apply_nprobe()
        self._record(depth)
        logger.info("tuned %s: %s", self.structure.describe(), self.operating_point)

    def _record(self, depth: Depth) -> None:
        """Time single-query searches at this depth on one thread and on all (on the sample, if any) and record the
        operating point with the faster thread count; its source is "given" when a caller fixed part of the depth."""
        given = [name for name in ("nprobe", "rerank") if getattr(self.tuning, name)]
        queries = self._sample.queries if self._sample is not None else self._latency_queries()
        p50s = p50_latencies_ms(
            lambda query, threads: self.search(query, 1, threads=threads), queries, sorted({1, ALL_THREADS})
        )
        threads = fastest(p50s)
        self.operating_point = {
            "nprobe": depth.nprobe,
            "rerank": depth.rerank,
            "recall_at_1": None if np.isnan(depth.recall) else round(depth.recall, 4),
            "queries": int(self._sample.queries.shape[0]) if self._sample is not None else 0,
            "count": self._live,
            "p50_ms": p50s[threads],
            "threads": threads,
            "p50_ms_by_threads": {str(count): p50 for count, p50 in p50s.items()},
            "target_recall": self.tuning.target_recall,
            "source": "given" if given else "measured",
            "given": given,
        }

    def _latency_queries(self) -> FloatArray:
        """Noisy copies of up to LATENCY_QUERIES stored vectors: queries to time when there is no sample in RAM."""
        live = np.flatnonzero(self._row_ids >= 0).astype(np.int64)
        rows = np.random.default_rng(TUNE_SEED).choice(live, min(LATENCY_QUERIES, live.size), replace=False)
        return noisy_copies(self.vectors_at(np.sort(rows)))

    def due_retune(self) -> bool:
        """Whether the trained IVF holds RETUNE_GROWTH times the faces it was tuned at (or was never tuned)."""
        return self._ivf is not None and due_retune((self.operating_point or {}).get("count"), self._live)

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
        self._sample = None  # its exact answers no longer hold
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
        self._sample = None
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
        self.self_tune()

    def search(self, queries: FloatArray, k: int, *, threads: int | None = None) -> tuple[FloatArray, IdArray]:
        """The k best faces of each query: the IVF's shortlist of `rerank` candidates re-scored against the full
        vectors. A single query runs on single_query_threads (or `threads`), its lists spread over them
        (spread_over_lists); a batch runs on all, its queries spread over them."""
        if self._ivf is None or self._live == 0:
            return self._scan(queries, k)
        if threads is None:
            threads = self.single_query_threads if queries.shape[0] == 1 else ALL_THREADS
        with omp_threads(threads):
            rows = self._shortlist(queries, max(k, self.structure.rerank))
        return self._rerank(queries, rows, k)

    def _shortlist(self, queries: FloatArray, depth: int) -> IdArray:
        """The IVF's best `depth` rows for each query at its nprobe, best first (-1 where it found fewer)."""
        assert self._ivf is not None
        spread_over_lists(self._ivf, queries.shape[0] == 1 and int(faiss.omp_get_max_threads()) > 1, depth)
        _, rows = self._ivf.search(queries, depth)
        return cast(IdArray, rows)

    def _rerank(self, queries: FloatArray, shortlist: IdArray, k: int) -> tuple[FloatArray, IdArray]:
        """The k best of each query's shortlisted rows by exact similarity to their full vectors, as face ids."""
        similarities = np.full((queries.shape[0], k), MISSING_SIMILARITY, dtype=np.float32)
        found = np.full((queries.shape[0], k), MISSING_ID, dtype=np.int64)
        depth = shortlist.shape[1]
        for start in range(0, queries.shape[0], 256):
            block = queries[start : start + 256]
            rows = shortlist[start : start + 256]
            valid = rows >= 0
            safe = np.where(valid, rows, 0)
            candidates = self.vectors_at(safe.ravel()).reshape(block.shape[0], depth, self._dim)
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

    def writers(self, *, vectors_on_disk: bool) -> dict[str, Writer]:
        """What a save writes, by file role: the IVF ("index"), the row ids ("ids"), and the full vectors ("vectors")
        unless the file on disk (vectors_on_disk) already holds every row as float16. Compacts first if a quarter of
        the rows are dead."""
        if self._rows and (self._rows - self._live) * 4 > self._rows:
            self._compact()
        writers: dict[str, Writer] = {"index": self._write_index, "ids": self._write_row_ids}
        # A format-1 (float32) base file is rewritten as float16 at its first save.
        if self._vectors_dirty or self._base.dtype != VECTORS_DTYPE or not vectors_on_disk:
            writers["vectors"] = self._write_vectors
        return writers

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
            "operating_point": self.operating_point,
        }


def spread_over_lists(ivf: Any, spread: bool, k: int) -> None:
    """How the IVF shares its threads out in its next search of k: spread=True over the lists it visits (for a
    single query, which faiss otherwise scans on one thread whatever the thread count), else over the queries.

    Fast-scan IVFs choose by implementation: 14 (heap, k <= 20) or 15 (reservoir) spread the lists over the threads,
    0 lets faiss pick its per-query one (12 or 13); the others by parallel_mode (1: over lists, 0: over queries).
    Both ways find the same similarities (ties may come out in another order). FaissIndex holds its lock around a
    search, so setting this on the shared IVF just before searching is not raced."""
    if isinstance(ivf, faiss.IndexIVFFastScan):
        spread_implem = FAST_SCAN_HEAP_SPREAD if k <= FAST_SCAN_HEAP_MAX_K else FAST_SCAN_RESERVOIR_SPREAD
        ivf.implem = spread_implem if spread else 0
    else:
        ivf.parallel_mode = 1 if spread else 0


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


# Either structure, as FaissIndex holds it.
Store: TypeAlias = ExactStore | IvfStore
