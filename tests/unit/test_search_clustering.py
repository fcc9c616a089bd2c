from __future__ import annotations

import numpy as np
import pytest

from facetrace.core.types import ScoreCalibration
from facetrace.evaluation.clustering import score_clustering
from facetrace.search.calibration import ScoreCalibrator
from facetrace.search.clustering import (
    ClusteringThresholds,
    assign_to_clusters,
    best_cluster,
    cluster,
    cross_evidence,
    rules_allow,
    thresholds_for,
)

THRESHOLDS = ClusteringThresholds(min_edge_similarity=0.5, min_average_similarity=0.6, min_link_similarity=0.3)


def _people(n_people: int, per_person: int, noise: float, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_people, dim))
    vectors, names = [], []
    for p, centre in enumerate(centres):
        for _ in range(per_person):
            vectors.append(centre / np.linalg.norm(centre) + noise * rng.standard_normal(dim) / np.sqrt(dim))
            names.append(f"p{p}")
    v = np.asarray(vectors, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True), names


def test_well_separated_people_are_recovered_exactly() -> None:
    vectors, names = _people(20, 6, noise=0.3)
    result = cluster(vectors, THRESHOLDS)
    report = score_clustering(result.labels, names, len(result.merges))
    assert report.pairwise_precision == 1.0 and report.pairwise_recall == 1.0
    assert result.cluster_count == 20 and report.bcubed_f1 == 1.0
    assert len(result.merges) == 20 * 5  # each person needs five merges to become one cluster


def test_a_bridge_face_does_not_chain_two_people_together() -> None:
    """Single linkage would merge A and B through the face halfway between them; the link floor refuses."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal(64)
    a /= np.linalg.norm(a)
    b = rng.standard_normal(64)
    b -= a * (a @ b)  # orthogonal: A and B are strangers (similarity 0)
    b /= np.linalg.norm(b)
    bridge = (a + b) / np.linalg.norm(a + b)  # 0.707 to both
    vectors = np.vstack([a, a, a, bridge, b, b, b]).astype(np.float32)
    result = cluster(vectors, ClusteringThresholds(0.5, 0.55, 0.3))
    labels = result.labels.tolist()
    assert labels[0] == labels[1] == labels[2]
    assert labels[4] == labels[5] == labels[6]
    assert labels[0] != labels[4], "two strangers were merged through a bridge face"


def test_merges_are_recorded_with_their_evidence() -> None:
    vectors, _ = _people(2, 3, noise=0.2)
    result = cluster(vectors, THRESHOLDS)
    for merge in result.merges:
        assert merge.kept < merge.absorbed
        assert merge.min_similarity >= THRESHOLDS.min_link_similarity
        assert merge.average_similarity >= THRESHOLDS.min_average_similarity


def test_new_faces_join_existing_clusters_or_start_their_own() -> None:
    vectors, _ = _people(5, 4, noise=0.3, seed=3)
    result = cluster(vectors, THRESHOLDS)
    more, more_names = _people(6, 1, noise=0.3, seed=3)  # same seed: the first five are the same people
    assigned = assign_to_clusters(more[:5], vectors, result.labels, THRESHOLDS)
    assert assigned.tolist() == [int(result.labels[4 * p]) for p in range(5)]
    stranger = np.random.default_rng(99).standard_normal((1, 64)).astype(np.float32)
    stranger /= np.linalg.norm(stranger)
    assert assign_to_clusters(stranger, vectors, result.labels, THRESHOLDS).tolist() == [-1]
    assert more_names[0] == "p0"


def test_thresholds_come_from_the_calibration() -> None:
    cal = ScoreCalibrator(ScoreCalibration("m", (0.0, 0.2, 0.4, 0.6), (0.5, 1e-2, 1e-4, 1e-6), 10**7, "x"))
    th = thresholds_for(cal, edge_fmr=1e-4, average_fmr=1e-5, link_fmr=1e-2)
    assert th.min_edge_similarity == pytest.approx(0.4)
    assert th.min_average_similarity == pytest.approx(0.5)
    assert th.min_link_similarity == pytest.approx(0.2)


def test_scores_of_known_clusterings() -> None:
    truth = ["a", "a", "a", "b", "b"]
    perfect = score_clustering([0, 0, 0, 1, 1], truth)
    assert (perfect.pairwise_precision, perfect.pairwise_recall, perfect.bcubed_f1) == (1.0, 1.0, 1.0)
    merged = score_clustering([0, 0, 0, 0, 0], truth)
    assert merged.pairwise_recall == 1.0 and merged.pairwise_precision == pytest.approx(4 / 10)
    split = score_clustering([0, 1, 2, 3, 4], truth)
    assert split.pairwise_precision == 1.0 and split.pairwise_recall == 0.0
    assert split.bcubed_precision == 1.0 and split.bcubed_recall == pytest.approx((3 * (1 / 3) + 2 * (1 / 2)) / 5)
    with pytest.raises(ValueError, match="predicted labels"):
        score_clustering([0, 1], truth)


def test_best_cluster_agrees_with_assign_to_clusters() -> None:
    """The neighbour-driven placement (best_cluster over candidate clusters) decides as the all-faces scan does."""
    vectors, _ = _people(6, 5, noise=0.4, seed=3)
    existing, new = vectors[::2][:12], vectors[1::2][:12]
    labels = cluster(existing, THRESHOLDS).labels
    expected = assign_to_clusters(new, existing, labels, THRESHOLDS)
    candidates = {int(label): existing[labels == label] for label in np.unique(labels)}
    for vector, want in zip(new, expected.tolist(), strict=True):
        found = best_cluster(vector, candidates, THRESHOLDS)
        assert (found[0] if found is not None else -1) == want
    assert (expected >= 0).sum() >= 6  # most new faces have a cluster to join


def test_merge_evidence_and_rules() -> None:
    vectors, _ = _people(2, 4, noise=0.3, seed=5)
    same = cross_evidence(vectors[:2], vectors[2:4])
    different = cross_evidence(vectors[:4], vectors[4:])
    assert same["min_similarity"] <= same["average_similarity"] <= same["edge_similarity"]
    assert rules_allow(same, THRESHOLDS) and not rules_allow(different, THRESHOLDS)
    assert best_cluster(vectors[0], {7: vectors[4:]}, THRESHOLDS) is None
