"""The robustness harness end to end: the real default analyzer on 16 LFW pairs, a few degradations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facetrace.evaluation.datasets import VerificationPair, read_pairs
from facetrace.evaluation.robustness.benchmark import evaluate_robustness
from facetrace.evaluation.robustness.plot import plot_report
from facetrace.evaluation.robustness.protocol import CLEAN
from facetrace.vision.analyzer import open_analyzer
from facetrace.vision.options import AnalyzerOptions


def _four_of_each(pairs: tuple[VerificationPair, ...], folds: tuple[int, ...]) -> list[VerificationPair]:
    chosen: list[VerificationPair] = []
    taken: dict[tuple[int, bool], int] = {}
    for pair in pairs:
        key = (pair.fold, pair.same)
        if pair.fold in folds and taken.get(key, 0) < 4:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(pair)
    return chosen


@pytest.mark.slow
def test_degradations_lower_accuracy_and_every_condition_is_reported(lfw: Path, tmp_path: Path) -> None:
    # The plain pipeline at the pack's detection threshold; the fallback is tested below.
    analyzer = open_analyzer(AnalyzerOptions(threads=2, rotation_fallback="off", min_detection_score=None))
    calibration = analyzer.pack.calibration
    assert calibration is not None
    pairs = _four_of_each(read_pairs(lfw / "pairs_resolved.csv"), (1, 2))
    conditions = (("gaussian_blur", 8.0, "sigma px"), ("occlude_eyes", 1.0, "bar"), ("rotate", 90.0, "degrees"))
    report = evaluate_robustness(
        analyzer, pairs, lfw, calibration, folds=2, pairs_per_fold=8, conditions=conditions, cache_dir=tmp_path
    )
    by_label = {row.label: row for row in report.results}
    assert {"clean", "gaussian_blur 8", "occlude_eyes 1", "rotate 90"} <= set(by_label)
    clean = by_label[CLEAN]
    assert report.pairs == 16 and clean.pairs == 16
    assert clean.tar_at_fmr >= 0.75 and clean.failure_to_detect == 0.0
    # A sigma-8 blur leaves a face the detector may still find, but not one the embedder can match reliably.
    assert by_label["gaussian_blur 8"].tar_at_fmr < clean.tar_at_fmr
    # YuNet and SFace are trained on upright faces: a face on its side is missed, or found but not matched.
    assert by_label["rotate 90"].tar_at_fmr < 0.5 * clean.tar_at_fmr
    # ...which the rotation fallback (detection on turned copies of unsure photos) recovers.
    turned = evaluate_robustness(
        open_analyzer(AnalyzerOptions(threads=2, rotation_fallback="auto", min_detection_score=None)),
        pairs,
        lfw,
        calibration,
        folds=2,
        pairs_per_fold=8,
        conditions=conditions[2:],
        cache_dir=tmp_path / "auto",
    )
    assert {row.label: row for row in turned.results}["rotate 90"].tar_at_fmr >= 0.9 * clean.tar_at_fmr
    assert 0.0 < report.threshold < 1.0 and report.impostor_pairs > 0
    for row in report.results:
        assert row.high_impostors_flagged <= row.high_impostors <= row.impostor_pairs

    # The clean photos were cached: a second run analyses only the degraded copies and agrees on the clean row.
    assert any(tmp_path.glob("robustness-clean-*.npz"))
    again = evaluate_robustness(
        analyzer, pairs, lfw, calibration, folds=2, pairs_per_fold=8, conditions=conditions[:1], cache_dir=tmp_path
    )
    assert again.results[0] == clean

    data = json.loads(report.to_json())
    assert len(data["results"]) == len(report.results)
    assert "| gaussian_blur | 8 sigma px |" in report.table()
    plot = tmp_path / "robustness.png"
    plot_report(report, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
