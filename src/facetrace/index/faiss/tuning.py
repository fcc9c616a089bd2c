"""How an approximate (IVF) store picks its own nprobe: it measures its recall@1 against exact search on noisy copies
of its own vectors and keeps the smallest nprobe that reaches the target.

The rule for the queries: query = 0.6 * v + 0.8 * u, with v a stored vector drawn at random (seeded) and u a random
unit vector orthogonal to v, so every query has cosine exactly 0.6 to the vector it came from, like a real
same-person pair of SFace embeddings (bench/search_scale.py's default noise 0.8 gives about the same). The ground
truth is the exact top 1 of each query over every stored vector (computed once, in chunks); a query counts as found
when the index's top 1 is that vector or scores the same (a tie). nprobe doubles from the default (nprobe_for(nlist))
up to nlist; the first that reaches the target is kept, else nlist (and a warning). The operating point (nprobe,
recall@1, how many queries, the p50 of a single-query search there) is recorded in the sidecar.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
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
# Single-query searches timed for the p50 latency at the chosen nprobe.
LATENCY_QUERIES = 50
# Cosine of each query to the stored vector it was made from (about that of a real same-person pair).
SAME_PERSON_COSINE = 0.6
# Two similarities this close are a tie (the re-ranking and the ground truth both use the float16 vectors).
TIE_TOLERANCE = 1e-5
TUNE_SEED = 13


@dataclass(frozen=True)
class Tuning:
    """What a store tunes to: target_recall, unless a caller gave nprobe (then it is kept, and only measured)."""

    target_recall: float = DEFAULT_TARGET_RECALL
    nprobe: int | None = None


@dataclass(frozen=True)
class Sample:
    """Queries made from the gallery and their exact top 1 (id and similarity)."""

    queries: FloatArray
    truth_ids: IdArray
    truth_similarities: FloatArray


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


def p50_latency_ms(search: Callable[[FloatArray, int], object], queries: FloatArray) -> float:
    """Median wall time of a single-query search (k=1) over up to LATENCY_QUERIES of the queries, in ms."""
    timings = []
    for row in range(min(LATENCY_QUERIES, queries.shape[0])):
        started = time.perf_counter()
        search(queries[row : row + 1], 1)
        timings.append(time.perf_counter() - started)
    return round(float(np.median(timings)) * 1000, 3)


def candidate_nprobes(nlist: int) -> list[int]:
    """nprobe doubling from the default up to nlist (nlist itself last)."""
    values = []
    nprobe = nprobe_for(nlist)
    while nprobe < nlist:
        values.append(nprobe)
        nprobe *= 2
    values.append(nlist)
    return values


def choose_nprobe(
    nlist: int,
    tuning: Tuning,
    sample: Sample,
    search_at: Callable[[int, FloatArray], tuple[FloatArray, IdArray]],
) -> tuple[int, float]:
    """The smallest nprobe (of candidate_nprobes, or the one given) whose recall@1 on the sample reaches the target,
    and that recall. search_at(nprobe, queries) is the store's top-1 search at that nprobe."""
    candidates = [min(nlist, tuning.nprobe)] if tuning.nprobe else candidate_nprobes(nlist)
    recall = 0.0
    for nprobe in candidates:
        similarities, ids = search_at(nprobe, sample.queries)
        recall = recall_at_1(ids[:, 0], similarities[:, 0], sample)
        logger.debug("nprobe %d of %d lists: recall@1 %.4f", nprobe, nlist, recall)
        if recall >= tuning.target_recall:
            return nprobe, recall
    if not tuning.nprobe:
        logger.warning(
            "recall@1 %.4f at nprobe %d (every list) is below the target %.3f: re-ranking depth or code limit it",
            recall,
            candidates[-1],
            tuning.target_recall,
        )
    return candidates[-1], recall
