from __future__ import annotations

import math

import pytest

from facetrace.core.types import ScoreCalibration
from facetrace.search.calibration import ScoreCalibrator

CAL = ScoreCalibration(
    model_id="m",
    similarities=(0.0, 0.2, 0.4, 0.6),
    false_match_rates=(0.5, 1e-2, 1e-4, 1e-6),
    impostor_pairs=10_000_000,
    measured_on="synthetic",
)


def test_fmr_interpolates_in_log_space() -> None:
    cal = ScoreCalibrator(CAL)
    fmr, upper = cal.false_match_rate(0.3)
    assert fmr == pytest.approx(1e-3, rel=1e-9)
    assert not upper
    assert cal.false_match_rate(-0.5) == (0.5, False)


def test_scores_beyond_the_measured_tail_are_upper_bounds_at_the_resolution() -> None:
    fmr, upper = ScoreCalibrator(CAL).false_match_rate(0.9)
    assert upper
    assert fmr == pytest.approx(1e-7)  # one pair in ten million, not an extrapolation


def test_gallery_probability_grows_with_gallery_size() -> None:
    cal = ScoreCalibrator(CAL)
    small = cal.evidence(0.4, 1000, probe_quality=0.9, weak_probe=False, weak_candidate=False)
    large = cal.evidence(0.4, 1_000_000, probe_quality=0.9, weak_probe=False, weak_candidate=False)
    assert small.gallery_false_match_probability == pytest.approx(1 - (1 - 1e-4) ** 1000)
    assert large.gallery_false_match_probability == pytest.approx(1 - (1 - 1e-4) ** 1_000_000)
    assert small.verdict.startswith("moderate lead")
    assert large.verdict.startswith("weak")
    assert large.expected_strangers_at_or_above == pytest.approx(100)


def test_strong_lead_and_weak_faces_are_said() -> None:
    ev = ScoreCalibrator(CAL).evidence(0.6, 1000, probe_quality=0.2, weak_probe=True, weak_candidate=False)
    assert ev.verdict.startswith("strong lead")
    assert "low-quality probe face" in ev.verdict
    assert "1 in 1,000,000" in ev.verdict


def test_uncalibrated_pack_never_gives_a_bare_number() -> None:
    ev = ScoreCalibrator(None).evidence(0.9, 10, probe_quality=1.0, weak_probe=False, weak_candidate=False)
    assert math.isnan(ev.false_match_rate) and not ev.calibrated
    assert "uncalibrated" in ev.verdict


def test_malformed_tables_are_refused() -> None:
    bad = ScoreCalibration("m", (0.2, 0.1), (0.1, 0.01), 10, "x")
    with pytest.raises(ValueError, match="ascend"):
        ScoreCalibrator(bad)


def test_a_tiny_gallery_does_not_turn_a_common_score_into_a_lead() -> None:
    # 1 in 100 strangers score this high: with 5 faces searched the gallery chance is small, but it is no lead.
    ev = ScoreCalibrator(CAL).evidence(0.2, 5, probe_quality=0.9, weak_probe=False, weak_candidate=False)
    assert ev.gallery_false_match_probability < 0.2
    assert ev.verdict.startswith("weak")
