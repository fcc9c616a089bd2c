"""How an approximate (IVF) store picks its own search depth (nprobe and re-ranking depth) and its thread count for
single-query searches: it measures its recall@1 against exact search on noisy copies of its own vectors, keeps the
smallest depth that reaches the target, then times single-query searches there on one thread and on all of them.

The rule for the queries: query = 0.6 * v + 0.8 * u, with v a stored vector drawn at random (seeded) and u a random
unit vector orthogonal to v, so every query has cosine exactly 0.6 to the vector it came from, like a real
same-person pair of SFace embeddings (bench/search_scale.py's default noise 0.8 gives about the same). The ground
truth is the exact top 1 of each query over every stored vector (computed once, in chunks, over the float16 full
vectors); a query counts as found when the index's top 1 is that vector or scores the same (a tie).

The depth: nprobe grows by a factor sqrt(2) from the default (nprobe_for(nlist)) up to nlist; at each nprobe one IVF
search returns a shortlist of the deepest re-ranking depth (RERANK_DEPTHS), in the IVF's own order, and each depth's
recall is that of re-ranking its first `depth` candidates. The first (nprobe, depth) pair, smallest nprobe first, then
smallest depth, that reaches the target is taken, else the deepest of both (and a warning). When a smaller step fell
short, nprobe is then bisected (REFINE_BISECTIONS times) between that step and the one taken, and the smallest
nprobe found to reach the target is kept, with its smallest sufficient depth. A caller's nprobe or re-ranking depth
is kept instead (and measured).

The threads: LATENCY_QUERIES single-query searches at the kept depth, alternating one thread and all of them (so that
a change of load on the machine hits both alike; on several threads one query's inverted lists are spread over them,
facetrace.index.faiss.stores.spread_over_lists); the one with the lower median is used for every single-query search
(batches use all threads). The operating point (nprobe, rerank, recall@1, queries, the gallery size it was
measured at, both medians and the thread count) is recorded in the sidecar. A gallery that has grown to RETUNE_GROWTH
times the size it was tuned at is tuned again at its next save (facetrace.index.faiss.backend).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.core.ports import IdArray
from facetrace.core.types import FloatArray
from facetrace.index.faiss.sizing import DEFAULT_TARGET_RECALL, nprobe_for

logger = logging.getLogger(__name__)

# Queries drawn from the gallery to measure recall (fewer if the gallery is smaller): +-0.6 % at recall 0.99.
TUNE_QUERIES = 300
# Single-query searches timed per thread count for the p50 latency at the chosen depth.
LATENCY_QUERIES = 50
# Cosine of each query to the stored vector it was made from (about that of a real same-person pair).
SAME_PERSON_COSINE = 0.6
# Two similarities this close are a tie (the re-ranking and the ground truth both use the float16 vectors).
TIE_TOLERANCE = 1e-5
TUNE_SEED = 13
# nprobe grows by this factor from the default: sqrt(2) overshoots the smallest sufficient nprobe by at most 41 %.
NPROBE_STEP = math.sqrt(2.0)
# After the sqrt(2) steps, nprobe is bisected this many times between the last step below the target and the first
# at it: the kept nprobe then overshoots the smallest sufficient one by at most 41 % / 8, about 5 %.
REFINE_BISECTIONS = 3
# Re-ranking depths tried at each nprobe, smallest first (50 still leaves a top 10 room to be re-ordered).
RERANK_DEPTHS = (50, 100, 200, 400)
# A gallery this many times the size it was tuned at is tuned again at its next save.
RETUNE_GROWTH = 2.0


@dataclass(frozen=True)
class Tuning:
    """What a store tunes to: target_recall, with the caller's nprobe or re-ranking depth kept where given (then it
    is only measured)."""

    target_recall: float = DEFAULT_TARGET_RECALL
    nprobe: int | None = None
    rerank: int | None = None


@dataclass(frozen=True)
class Sample:
    """Queries made from the gallery and their exact top 1 (id and similarity)."""

    queries: FloatArray
    truth_ids: IdArray
    truth_similarities: FloatArray


@dataclass(frozen=True)
class Depth:
    """A search depth and the recall@1 measured there."""

    nprobe: int
    rerank: int
    recall: float


def noisy_copies(vectors: FloatArray, seed: int = TUNE_SEED) -> FloatArray:
    """Each vector (unit length) turned by a random direction so that its copy has cosine SAME_PERSON_COSINE to it."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(vectors.shape).astype(np.float32)
    noise -= np.sum(noise * vectors, axis=1, keepdims=True) * vectors
    noise /= np.maximum(np.linalg.norm(noise, axis=1, keepdims=True), 1e-12)
    sine = float(np.sqrt(1.0 - SAME_PERSON_COSINE**2))
    queries = SAME_PERSON_COSINE * vectors + sine * noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return queries.astype(np.float32)


def exact_top1(
    queries: FloatArray, chunks: Iterator[tuple[IdArray, npt.NDArray[Any]]], row_ids: IdArray
) -> tuple[IdArray, FloatArray]:
    """The exact top 1 (face id, similarity) of each query over the (rows, vectors) chunks; dead rows (-1) skipped."""
    best_similarities = np.full(queries.shape[0], -np.inf, dtype=np.float32)
    best_ids = np.full(queries.shape[0], -1, dtype=np.int64)
    for rows, vectors in chunks:
        similarities = queries @ vectors.T
        similarities[:, row_ids[rows] < 0] = -np.inf
        column = np.argmax(similarities, axis=1)
        top = similarities[np.arange(queries.shape[0]), column]
        better = top > best_similarities
        best_similarities[better] = top[better]
        best_ids[better] = row_ids[rows[column[better]]]
    return best_ids, best_similarities


def recall_at_1(found_ids: IdArray, found_similarities: FloatArray, sample: Sample) -> float:
    hits = (found_ids == sample.truth_ids) | (found_similarities >= sample.truth_similarities - TIE_TOLERANCE)
    return float(hits.mean())


def p50_latencies_ms(
    search: Callable[[FloatArray, int], object], queries: FloatArray, thread_counts: Sequence[int]
) -> dict[int, float]:
    """Median wall time (ms) of a single-query search over up to LATENCY_QUERIES of the queries, for each thread
    count; search(query, threads). The counts take turns on every query, after one warm-up search each."""
    timings: dict[int, list[float]] = {threads: [] for threads in thread_counts}
    for threads in thread_counts:
        search(queries[:1], threads)
    for row in range(min(LATENCY_QUERIES, queries.shape[0])):
        for threads in thread_counts:
            started = time.perf_counter()
            search(queries[row : row + 1], threads)
            timings[threads].append(time.perf_counter() - started)
    return {threads: round(float(np.median(times)) * 1000, 3) for threads, times in timings.items()}


def fastest(p50s: dict[int, float]) -> int:
    """The thread count with the lowest median (the fewer threads on a tie: they leave cores to other work)."""
    return min(p50s, key=lambda threads: (p50s[threads], threads))


def candidate_nprobes(nlist: int) -> list[int]:
    """nprobe growing by NPROBE_STEP from the default up to nlist (nlist itself last)."""
    values: list[int] = []
    nprobe = float(nprobe_for(nlist))
    while round(nprobe) < nlist:
        if not values or round(nprobe) > values[-1]:
            values.append(round(nprobe))
        nprobe *= NPROBE_STEP
    values.append(nlist)
    return values


def choose_depth(
    nlist: int,
    tuning: Tuning,
    sample: Sample,
    shortlist_at: Callable[[int, int], IdArray],
    rerank_top1: Callable[[IdArray], tuple[FloatArray, IdArray]],
) -> Depth:
    """The smallest nprobe, and at it the smallest re-ranking depth, whose recall@1 on the sample reaches the target
    (or the ones the caller gave). shortlist_at(nprobe, depth) is the IVF's candidate rows for the sample's queries
    at that nprobe, best first; rerank_top1(rows) the top 1 (similarity, face id) after re-ranking those rows."""
    nprobes = [min(nlist, tuning.nprobe)] if tuning.nprobe else candidate_nprobes(nlist)
    depths = [tuning.rerank] if tuning.rerank else list(RERANK_DEPTHS)

    def measured(nprobe: int) -> Depth:
        """The smallest re-ranking depth that reaches the target at this nprobe, else the deepest."""
        rows = shortlist_at(nprobe, depths[-1])
        for rerank in depths:
            similarities, ids = rerank_top1(rows[:, :rerank])
            depth = Depth(nprobe, rerank, recall_at_1(ids, similarities, sample))
            logger.debug("nprobe %d of %d lists, rerank %d: recall@1 %.4f", nprobe, nlist, rerank, depth.recall)
            if depth.recall >= tuning.target_recall:
                break
        return depth

    short_of = 0  # the largest nprobe measured below the target
    for nprobe in nprobes:
        depth = measured(nprobe)
        if depth.recall >= tuning.target_recall:
            return depth if tuning.nprobe else refined(depth, short_of, measured, tuning.target_recall)
        short_of = nprobe
    if not (tuning.nprobe or tuning.rerank):
        logger.warning(
            "recall@1 %.4f at nprobe %d (every list), rerank %d is below the target %.3f: the code limits it",
            depth.recall,
            depth.nprobe,
            depth.rerank,
            tuning.target_recall,
        )
    return depth


def refined(reached: Depth, short_of: int, measured: Callable[[int], Depth], target: float) -> Depth:
    """The depth kept after the sqrt(2) steps: REFINE_BISECTIONS bisections of nprobe between short_of (the last
    step below the target, 0 when the first step reached it: nothing to refine) and reached.nprobe, each keeping
    the smaller nprobe that reaches the target."""
    if not short_of:
        return reached
    for _ in range(REFINE_BISECTIONS):
        middle = (short_of + reached.nprobe) // 2
        if middle <= short_of:
            break
        depth = measured(middle)
        if depth.recall >= target:
            reached = depth
        else:
            short_of = middle
    return reached


def due_retune(tuned_at: object, count: int) -> bool:
    """Whether a gallery of count faces, tuned at tuned_at faces (None: not recorded), is due to be tuned again."""
    if not isinstance(tuned_at, int) or tuned_at <= 0:
        return count > 0
    return count >= RETUNE_GROWTH * tuned_at
