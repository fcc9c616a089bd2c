"""The verification harness end to end: the real default analyzer on 40 LFW pairs (4 from each fold)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facetrace.evaluation.datasets import VerificationPair, read_pairs
from facetrace.evaluation.verify import evaluate_verification
from facetrace.vision.options import AnalyzerOptions

REPO_ROOT = Path(__file__).resolve().parents[2]


def _lfw_dir() -> Path:
    datasets = Path(os.environ.get("FACETRACE_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
    lfw = datasets / "lfw"
    if not (lfw / "pairs_resolved.csv").is_file():
        pytest.skip(f"LFW not found at {lfw} (set FACETRACE_DATASETS to the folder holding lfw/)")
    return lfw


def _two_of_each_per_fold(pairs: tuple[VerificationPair, ...]) -> list[VerificationPair]:
    chosen: list[VerificationPair] = []
    taken: dict[tuple[int, bool], int] = {}
    for pair in pairs:
        key = (pair.fold, pair.same)
        if taken.get(key, 0) < 2:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(pair)
    return chosen


@pytest.mark.slow
def test_default_pack_verifies_lfw_pairs() -> None:
    lfw = _lfw_dir()
    analyzer_module = pytest.importorskip("facetrace.vision.analyzer", reason="the vision layer is not built yet")
    pairs = _two_of_each_per_fold(read_pairs(lfw / "pairs_resolved.csv"))
    assert len(pairs) == 40
    analyzer = analyzer_module.open_analyzer(AnalyzerOptions(threads=2, min_detection_score=None))
    report = evaluate_verification(analyzer, pairs, lfw)
    assert report.folds == 10
    assert report.images_without_face <= 1
    assert report.accuracy >= 0.9, report.summary()
