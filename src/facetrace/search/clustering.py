"""Grouping unknown faces into identities, conservatively: a wrong merge of two people is worse than a split.

Single-linkage (connect every pair above a threshold, take connected components) chains: one false edge merges two
people, and in a large gallery false edges are certain. So merges here are agglomerative over candidate edges in
descending similarity, and two clusters merge only when the merge is supported by the whole of both:
  - the average similarity across them is at least min_average_similarity, and
  - no cross pair is below min_link_similarity (a complete-linkage floor, so a cluster cannot drift).
Thresholds are best chosen as false-match rates of the pack's calibration (see thresholds_for), which keeps them
meaningful for any model pack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facetrace.core.types import FloatArray
from facetrace.search.calibration import ScoreCalibrator

IntArray = npt.NDArray[np.int64]
EDGE_FALSE_MATCH_RATE = 1e-4
AVERAGE_FALSE_MATCH_RATE = 1e-5
LINK_FALSE_MATCH_RATE = 1e-2
DEFAULT_NEIGHBOURS = 30
CHUNK_ROWS = 2048


@dataclass(frozen=True)
class ClusteringThresholds:
    min_edge_similarity: float  # a pair below this is never a candidate for a merge
    min_average_similarity: float  # mean similarity across two clusters needed to merge them
    min_link_similarity: float  # every cross pair of a merge must reach this
    neighbours: int = DEFAULT_NEIGHBOURS  # candidate edges per face (its nearest neighbours)


@dataclass(frozen=True)
class MergeRecord:
    """One merge, in the order made: the evidence a reviewer can audit or undo."""

    kept: int  # cluster label that survives (smallest face position in it)
    absorbed: int
    edge_similarity: float
    average_similarity: float
    min_similarity: float


@dataclass(frozen=True, eq=False)
class Clustering:
    labels: IntArray  # labels[i] is the cluster of face i: the position of the cluster's first face
    merges: tuple[MergeRecord, ...]
    thresholds: ClusteringThresholds

    @property
    def cluster_count(self) -> int:
        return int(np.unique(self.labels).size)


def thresholds_for(
    calibrator: ScoreCalibrator,
    *,
    edge_fmr: float = EDGE_FALSE_MATCH_RATE,
    average_fmr: float = AVERAGE_FALSE_MATCH_RATE,
    link_fmr: float = LINK_FALSE_MATCH_RATE,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> ClusteringThresholds:
    """Thresholds at the similarities where the pack's impostor false-match rate equals the given rates."""
    return ClusteringThresholds(
        min_edge_similarity=calibrator.similarity_at(edge_fmr),
        min_average_similarity=calibrator.similarity_at(average_fmr),
        min_link_similarity=calibrator.similarity_at(link_fmr),
        neighbours=neighbours,
    )


def candidate_edges(
    vectors: FloatArray, min_similarity: float, neighbours: int
) -> tuple[IntArray, IntArray, FloatArray]:
    """Pairs (i < j) among each face's nearest neighbours scoring at least min_similarity, best first."""
    n = vectors.shape[0]
    k = min(neighbours + 1, n)
    rows: list[IntArray] = []
    cols: list[IntArray] = []
    sims: list[FloatArray] = []
    for start in range(0, n, CHUNK_ROWS):
        block = vectors[start : start + CHUNK_ROWS] @ vectors.T
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(block, top, axis=1)
        r = np.repeat(np.arange(start, start + block.shape[0], dtype=np.int64), k)
        c = top.ravel().astype(np.int64)
        s = top_sims.ravel().astype(np.float32)
        keep = (r != c) & (s >= min_similarity)
        a, b = np.minimum(r[keep], c[keep]), np.maximum(r[keep], c[keep])
        rows.append(a)
        cols.append(b)
        sims.append(s[keep])
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    a, b, s = np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)
    pairs = a * n + b
    _, first = np.unique(pairs, return_index=True)  # an edge found from both ends counts once
    a, b, s = a[first], b[first], s[first]
    order = np.argsort(-s, kind="stable")
    return a[order], b[order], s[order]


def cluster(vectors: FloatArray, thresholds: ClusteringThresholds) -> Clustering:
    """Conservative agglomerative clustering of L2-normalised embeddings (n, d)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = vectors.shape[0]
    parent = np.arange(n, dtype=np.int64)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    merges: list[MergeRecord] = []
    rows, cols, sims = candidate_edges(vectors, thresholds.min_edge_similarity, thresholds.neighbours)
    for i, j, edge in zip(rows.tolist(), cols.tolist(), sims.tolist(), strict=True):
        ri, rj = root(i), root(j)
        if ri == rj:
            continue
        cross = vectors[members[ri]] @ vectors[members[rj]].T
        average, lowest = float(cross.mean()), float(cross.min())
        if average < thresholds.min_average_similarity or lowest < thresholds.min_link_similarity:
            continue
        kept, absorbed = (ri, rj) if ri < rj else (rj, ri)
        parent[absorbed] = kept
        members[kept].extend(members.pop(absorbed))
        merges.append(MergeRecord(kept, absorbed, edge, average, lowest))
    labels = np.fromiter((root(i) for i in range(n)), dtype=np.int64, count=n)
    return Clustering(labels=labels, merges=tuple(merges), thresholds=thresholds)


def assign_to_clusters(
    new_vectors: FloatArray, vectors: FloatArray, labels: IntArray, thresholds: ClusteringThresholds
) -> IntArray:
    """Incremental clustering: each new face joins the existing cluster it would merge with under the same rules
    (average and complete-link floors), else it starts its own (label -1; the caller numbers new clusters)."""
    out = np.full(new_vectors.shape[0], -1, dtype=np.int64)
    if vectors.shape[0] == 0:
        return out
    sims = new_vectors @ vectors.T
    for row, face_sims in enumerate(sims):
        best_label, best_average = -1, thresholds.min_average_similarity
        for label in np.unique(labels[face_sims >= thresholds.min_edge_similarity]).tolist():
            cross = face_sims[labels == label]
            if float(cross.min()) >= thresholds.min_link_similarity and float(cross.mean()) >= best_average:
                best_label, best_average = int(label), float(cross.mean())
        out[row] = best_label
    return out


def best_cluster(
    vector: FloatArray, candidates: Mapping[int, FloatArray], thresholds: ClusteringThresholds
) -> tuple[int, dict[str, float]] | None:
    """The candidate cluster one new face would merge with under the batch rules (a member at the edge threshold,
    the mean across all members at the average threshold, no member below the link floor), best mean first;
    None when no candidate qualifies. candidates maps a cluster id to its members' embeddings (m, d)."""
    best: tuple[int, dict[str, float]] | None = None
    for cluster_id, members in candidates.items():
        if members.shape[0] == 0:
            continue
        sims = members @ vector
        evidence = similarity_evidence(sims)
        if not rules_allow(evidence, thresholds):
            continue
        if best is None or evidence["average_similarity"] > best[1]["average_similarity"]:
            best = (int(cluster_id), evidence)
    return best


def cross_evidence(a: FloatArray, b: FloatArray) -> dict[str, float]:
    """Edge (best), mean and lowest similarity across two groups of faces: what the merge rules look at."""
    return similarity_evidence((a @ b.T).ravel())


def similarity_evidence(sims: FloatArray) -> dict[str, float]:
    return {
        "edge_similarity": round(float(sims.max()), 6),
        "average_similarity": round(float(sims.mean()), 6),
        "min_similarity": round(float(sims.min()), 6),
    }


def rules_allow(evidence: Mapping[str, float], thresholds: ClusteringThresholds) -> bool:
    """Whether the automatic rules would merge two groups with this evidence."""
    return (
        evidence["edge_similarity"] >= thresholds.min_edge_similarity
        and evidence["average_similarity"] >= thresholds.min_average_similarity
        and evidence["min_similarity"] >= thresholds.min_link_similarity
    )


def groups_of(clustering: Clustering) -> dict[int, list[int]]:
    """Positions of the faces of each cluster label, in label order."""
    groups: dict[int, list[int]] = {}
    for position, label in enumerate(clustering.labels.tolist()):
        groups.setdefault(int(label), []).append(position)
    return groups
