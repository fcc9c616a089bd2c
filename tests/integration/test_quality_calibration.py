"""Quality-conditioned calibration on real LFW photos: the harness, and the default pack's tables in use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from facetrace.core.evidence import detail
from facetrace.engine import open_engine
from facetrace.evaluation.datasets import VerificationPair, read_pairs
from facetrace.evaluation.quality_calibration import measure_quality_calibration
from facetrace.evaluation.robustness.benchmark import evaluate_robustness
from facetrace.search.calibration import ScoreCalibrator
from facetrace.vision.analyzer import open_analyzer
from facetrace.vision.degradations import degrade
from facetrace.vision.images import decode_image, encode_jpeg
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.packs import load_pack


def _four_of_each(pairs: tuple[VerificationPair, ...], folds: tuple[int, ...]) -> list[VerificationPair]:
    chosen: list[VerificationPair] = []
    taken: dict[tuple[int, bool], int] = {}
    for pair in pairs:
        key = (pair.fold, pair.same)
        if pair.fold in folds and taken.get(key, 0) < 4:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(pair)
    return chosen


class _NothingToAnalyse:
    """The real analyzer's identity, but analysing anything fails: proves a run is served from the cache."""

    def __init__(self, real: Any) -> None:
        self.model_id = real.model_id
        self.embedding_dim = real.embedding_dim

    def analyze_batch(self, items: Any) -> Any:
        raise AssertionError(f"analysed {len(items)} clean photos again")

    def analyze_array(self, bgr: Any, source: str) -> Any:
        raise AssertionError(f"analysed {source} again")


@pytest.mark.slow
def test_tables_are_measured_from_the_robustness_cache(lfw: Path, tmp_path: Path) -> None:
    analyzer = open_analyzer(AnalyzerOptions(threads=2, rotation_fallback="off", min_detection_score=None))
    calibration = analyzer.pack.calibration
    assert calibration is not None
    pairs = _four_of_each(read_pairs(lfw / "pairs_resolved.csv"), (1, 2))
    conditions = (("gaussian_blur", 4.0, "sigma px"), ("occlude_eyes", 1.0, "bar"))
    evaluate_robustness(
        analyzer, pairs, lfw, calibration, folds=2, pairs_per_fold=8, conditions=conditions, cache_dir=tmp_path
    )
    assert len(list(tmp_path.glob("robustness-degraded-*.npz"))) == 2

    report = measure_quality_calibration(
        _NothingToAnalyse(analyzer),  # type: ignore[arg-type]
        pairs,
        lfw,
        calibration,
        folds=2,
        pairs_per_fold=8,
        conditions=conditions,
        cache_dir=tmp_path,
    )
    pools = {pool.pool: pool for pool in report.pools}
    assert set(pools) == {"none_flagged", "one_flagged", "both_flagged"}
    # Blurred (sigma 4) and eye-barred probes are nearly all flagged: pairs of two of them fill both_flagged.
    assert pools["both_flagged"].pairs_by_source["alike"] > 0
    assert pools["one_flagged"].pairs_by_source["vs_clean"] > 0
    conditioned = dict(report.calibration.conditioned)
    assert set(conditioned) == {"one_flagged", "both_flagged"}
    for name, table in conditioned.items():
        assert table.impostor_pairs == pools[name].impostor_pairs
        assert table.model_id == calibration.model_id
        assert list(table.false_match_rates) == sorted(table.false_match_rates, reverse=True)
    assert report.calibration.similarities == calibration.similarities  # the clean table is kept as it was
    assert "| both_flagged |" in report.summary()
    assert json.loads(report.to_json())["tables"]["both_flagged"]["impostor_pairs"] > 0


def _degraded_copy(lfw: Path, relative: str, target: Path) -> Path:
    image = decode_image((lfw / relative).read_bytes(), relative)
    target.write_bytes(encode_jpeg(degrade(image, "gaussian_blur", 3.0, None, seed=0), quality=95))
    return target


def test_a_flagged_pair_of_real_photos_gets_the_conditioned_rate(lfw: Path, tmp_path: Path) -> None:
    """Blurred LFW photos: the default pack's both_flagged table prices their comparison where it is higher."""
    calibration = load_pack(None).calibration
    assert calibration is not None and calibration.table("both_flagged") is not None
    clean = ScoreCalibrator(calibration)
    both = ScoreCalibrator(calibration.table("both_flagged"))
    fold = [p for p in read_pairs(lfw / "pairs_resolved.csv") if p.fold == 1]
    # Two blurred photos of one person score where leads are judged (0.3-0.7), where the both_flagged table lies
    # above the clean one; two blurred strangers score lower, where the clean table is the higher one.
    pairs = [p for p in fold if p.same][:3] + [p for p in fold if not p.same][:2]
    conditioned = 0
    with open_engine(tmp_path / "data", workers=1) as engine:
        for number, pair in enumerate(pairs):
            a = _degraded_copy(lfw, pair.path_a, tmp_path / f"{number}a.jpg")
            b = _degraded_copy(lfw, pair.path_b, tmp_path / f"{number}b.jpg")
            comparison = engine.search.compare_files(a, b)
            assert comparison.quality_a.flags and comparison.quality_b.flags  # sigma 3 blur: both flagged
            evidence = comparison.evidence
            clean_rate = clean.false_match_rate(comparison.similarity)[0]
            both_rate = both.false_match_rate(comparison.similarity)[0]
            assert evidence.false_match_rate == pytest.approx(max(clean_rate, both_rate))
            if both_rate > clean_rate:
                conditioned += 1
                assert evidence.quality_condition == "both_flagged"
                assert "both faces low-quality" in detail(evidence)
            else:
                assert evidence.quality_condition == "clean"
                assert "Rate from the clean table" in detail(evidence)
        # One blurred photo against a clean one: never a lower rate than the clean table's.
        pair = pairs[0]
        one = engine.search.compare_files(_degraded_copy(lfw, pair.path_a, tmp_path / "one.jpg"), lfw / pair.path_b)
        assert one.quality_a.flags and not one.quality_b.flags
        assert one.evidence.false_match_rate >= clean.false_match_rate(one.similarity)[0]
    # The table is not a no-op on real photos: the blurred same-person pairs read it.
    assert conditioned >= 2
