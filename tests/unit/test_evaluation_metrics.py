"""Metrics on hand-made scores whose answers are worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.evaluation import metrics


def test_best_threshold_separable_scores_sits_between_the_classes() -> None:
    threshold, accuracy = metrics.best_threshold([0.1, 0.2, 0.3, 0.4], [False, False, True, True])
    assert threshold == pytest.approx(0.25)
    assert accuracy == 1.0


def test_best_threshold_ties_go_to_the_lowest_threshold() -> None:
    # Sorted: 0.1 diff, 0.3 same, 0.35 diff, 0.4 same. Cuts at 0.2 and at 0.375 both get 3 of 4 right.
    threshold, accuracy = metrics.best_threshold([0.1, 0.35, 0.3, 0.4], [False, False, True, True])
    assert threshold == pytest.approx(0.2)
    assert accuracy == 0.75


def test_best_threshold_never_splits_tied_scores() -> None:
    threshold, accuracy = metrics.best_threshold([0.5, 0.5], [True, False])
    assert accuracy == 0.5
    assert threshold == 0.5


def test_kfold_perfectly_separable_folds() -> None:
    rng = np.random.default_rng(0)
    same = np.tile([True, False], 50)
    scores = np.where(same, rng.uniform(0.6, 1.0, 100), rng.uniform(-0.2, 0.4, 100))
    folds = np.repeat(np.arange(1, 11), 10)
    result = metrics.kfold_accuracy(scores, same, folds)
    assert result.mean == 1.0
    assert result.std == 0.0
    assert len(result.fold_accuracies) == 10
    assert all(0.4 <= t <= 0.6 for t in result.fold_thresholds)


def test_kfold_applies_the_threshold_fitted_on_the_other_folds() -> None:
    # Fold 1 is normal (same 0.9, diff 0.1); fold 2 is inverted (same 0.2, diff 0.8).
    # Held-out fold 1: fitted on fold 2 -> best is "accept all" at 0.2 -> fold 1 scores 2/2.
    # Held-out fold 2: fitted on fold 1 -> threshold 0.5 -> fold 2 scores 0/2.
    result = metrics.kfold_accuracy([0.9, 0.1, 0.2, 0.8], [True, False, True, False], [1, 1, 2, 2])
    assert result.fold_accuracies == (1.0, 0.0)
    assert result.fold_thresholds == pytest.approx((0.2, 0.5))
    assert result.mean == 0.5
    assert result.std == 0.5


def test_kfold_needs_two_folds() -> None:
    with pytest.raises(ValueError, match="at least 2 folds"):
        metrics.kfold_accuracy([0.1, 0.9], [False, True], [1, 1])


def test_scores_must_be_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        metrics.best_threshold([0.1, float("nan")], [False, True])


def test_tar_at_far_uses_the_allowed_number_of_false_accepts() -> None:
    impostor = np.arange(1000) / 999.0  # the top two are 1.0 and 0.998999
    genuine = np.array([0.5, 0.999, 0.9995, 1.0])
    scores = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(4, bool), np.zeros(1000, bool)])
    point = metrics.tar_at_far(scores, same, 1e-3)
    # FAR 1e-3 of 1000 impostors allows one false accept: accept strictly above 0.998999.
    assert point.resolved
    assert point.far == pytest.approx(1e-3)
    assert point.tar == 0.75
    assert point.far_resolution == pytest.approx(1e-3)


def test_tar_at_far_below_resolution_is_flagged() -> None:
    scores = np.array([0.5, 0.999, 0.9995, 1.0, *(np.arange(1000) / 999.0)])
    same = np.array([True] * 4 + [False] * 1000)
    point = metrics.tar_at_far(scores, same, 1e-4)
    # 1e-4 x 1000 impostors = 0.1 false accepts: only "none" is possible, just above the top impostor (1.0).
    assert not point.resolved
    assert point.far == 0.0
    assert point.tar == 0.0
    assert point.threshold > 1.0


def test_tar_at_far_handles_tied_impostors() -> None:
    # Two impostors tie at 0.9; one false accept allowed out of 10 -> neither may pass.
    impostor = [0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    scores = [0.95, 0.85, *impostor]
    same = [True, True] + [False] * 10
    point = metrics.tar_at_far(scores, same, 0.1)
    assert point.far == 0.0
    assert point.tar == 0.5


def test_threshold_for_false_rate_counts_exact_multiples() -> None:
    # 0.001 * 3000 is 3 false accepts, even though the float product is not exactly 3.
    negatives = np.arange(3000, dtype=np.float64)
    threshold, resolved = metrics.threshold_for_false_rate(negatives, 0.001)
    assert resolved
    assert int(np.count_nonzero(negatives >= threshold)) == 3


def test_roc_curve_points() -> None:
    points = metrics.roc_curve([0.9, 0.8, 0.7, 0.1], [True, False, True, False])
    assert [(p.far, p.tar) for p in points] == [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
    assert [p.threshold for p in points[1:]] == [0.9, 0.8, 0.7, 0.1]


def test_mate_ranks_counts_ties_against_the_probe_and_missing_mates_as_misses() -> None:
    similarities = np.array(
        [
            [0.9, 0.5, 0.1],  # mate 0 is best -> rank 1
            [0.2, 0.3, 0.8],  # mate 0 is worst -> rank 3
            [0.5, 0.5, 0.0],  # mate 1 ties with column 0 -> rank 2
            [0.5, 0.5, 0.0],  # mate missing -> a miss at every rank
        ]
    )
    ranks = metrics.mate_ranks(similarities, [0, 0, 1, -1])
    assert ranks.tolist() == [1, 3, 2, metrics.MISSED_RANK]
    assert metrics.cmc(ranks, 5) == (0.25, 0.5, 0.75, 0.75, 0.75)
    assert metrics.identification_rate(ranks, 2) == 0.5


def test_fnir_at_fpir() -> None:
    nonmated = np.arange(100) / 100.0  # 0.00 .. 0.99
    # FPIR 1% of 100 allows one: threshold just above 0.98.
    point = metrics.fnir_at_fpir([0.99, 0.5, 0.985, 0.999], [1, 1, 1, 2], nonmated, 0.01)
    assert point.resolved
    assert point.fpir == pytest.approx(0.01)
    # Found: 0.99 (rank 1, above), 0.985 (rank 1, above). Missed: 0.5 (below), 0.999 (rank 2).
    assert point.fnir == 0.5
    assert point.mated_probes == 4
    assert point.nonmated_probes == 100


def test_fnir_at_fpir_below_resolution() -> None:
    point = metrics.fnir_at_fpir([0.9], [1], [0.1, 0.2, 0.3], 0.01)
    assert not point.resolved
    assert point.fpir == 0.0
    assert point.fnir == 0.0


def test_top_scores_and_ranks_exact_search() -> None:
    gallery = np.eye(3, dtype=np.float32)
    probes = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [0.0, 0.0, 1.0]], dtype=np.float32)
    best, mate_scores, ranks = metrics.top_scores_and_ranks(probes, gallery, [0, 1, -1])
    assert best.tolist() == pytest.approx([1.0, 0.8, 1.0])
    assert mate_scores.tolist() == pytest.approx([1.0, 0.6, -1.0])
    assert ranks.tolist() == [1, 2, metrics.MISSED_RANK]


def test_top_scores_and_ranks_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(50, 8)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    probes = gallery[[3, 7, 11, 40, 41]] + rng.normal(scale=0.01, size=(5, 8)).astype(np.float32)
    mates = np.array([3, 7, 11, 40, 41])
    whole = metrics.top_scores_and_ranks(probes, gallery, mates)
    monkeypatch.setattr(metrics, "_PROBE_CHUNK_ROWS", 2)
    chunked = metrics.top_scores_and_ranks(probes, gallery, mates)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    assert whole[2].tolist() == [1, 1, 1, 1, 1]
