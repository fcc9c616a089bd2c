from __future__ import annotations

import dataclasses
import math

import pytest

from facetrace.core.evidence import detail
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
    assert "the probe face is of low quality" in ev.verdict
    assert "about 1 in 1 million strangers" in ev.verdict


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


# Quality-conditioned tables: both_flagged higher than CAL above 0.3; one_flagged higher below 0.2, lower from 0.3 on.
BOTH = ScoreCalibration("m", (0.0, 0.3, 0.6), (0.5, 1e-2, 1e-3), 1_000_000, "degraded alike")
ONE = ScoreCalibration("m", (0.0, 0.15, 0.4, 0.6), (0.6, 0.1, 1e-5, 1e-7), 1_000_000, "degraded vs clean")
CONDITIONED = dataclasses.replace(CAL, conditioned=(("one_flagged", ONE), ("both_flagged", BOTH)))


def test_a_flagged_pair_reads_the_conditioned_table_where_it_is_more_pessimistic() -> None:
    cal = ScoreCalibrator(CONDITIONED)
    assert set(cal.conditions) == {"one_flagged", "both_flagged"}
    ev = cal.evidence(0.6, 1000, probe_quality=0.2, weak_probe=True, weak_candidate=True)
    assert ev.quality_condition == "both_flagged"
    assert ev.false_match_rate == pytest.approx(1e-3)  # not the clean table's 1e-6
    assert not ev.verdict.startswith("strong")  # 1e-6 alone would have made it a strong lead
    assert "both faces are of low quality, and the rate allows for it" in ev.verdict
    assert "table of impostor pairs with both faces low-quality" in detail(ev)


def test_a_conditioned_table_is_never_more_optimistic_than_the_clean_one() -> None:
    cal = ScoreCalibrator(CONDITIONED)
    clean = ScoreCalibrator(CAL)
    for similarity in (-0.2, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8):
        for weak_probe, weak_candidate in ((True, False), (False, True), (True, True)):
            ev = cal.evidence(similarity, 10, probe_quality=0.5, weak_probe=weak_probe, weak_candidate=weak_candidate)
            clean_rate = clean.false_match_rate(similarity)[0]
            assert ev.false_match_rate >= clean_rate
    # ONE lies below the clean table from 0.3 on: a pair with one flagged face keeps the clean rate there.
    ev = cal.evidence(0.4, 10, probe_quality=0.5, weak_probe=False, weak_candidate=True)
    assert ev.quality_condition == "clean"
    assert ev.false_match_rate == pytest.approx(1e-4)
    assert "Rate from the clean table, which is higher here" in detail(ev)
    # ...but below 0.2 it is higher, and is used.
    assert ScoreCalibrator(ONE).false_match_rate(0.1)[0] > clean.false_match_rate(0.1)[0]
    low = cal.evidence(0.1, 10, probe_quality=0.5, weak_probe=True, weak_candidate=False)
    assert low.quality_condition == "one_flagged"
    assert low.false_match_rate > clean.false_match_rate(0.1)[0]


def test_a_pair_without_flags_reads_the_clean_table() -> None:
    ev = ScoreCalibrator(CONDITIONED).evidence(0.6, 1000, probe_quality=0.9, weak_probe=False, weak_candidate=False)
    assert ev.quality_condition == "clean"
    assert ev.false_match_rate == pytest.approx(1e-6)
    assert "table" not in ev.verdict and "(impostor pairs of good-quality faces)" in detail(ev)


def test_beyond_a_conditioned_tables_top_its_resolution_bounds_the_rate() -> None:
    # BOTH's highest impostor scored 0.6 among a million pairs: at 0.9 the rate is only known to be below 1e-6,
    # which is still above the clean table's bound of 1e-7 there.
    ev = ScoreCalibrator(CONDITIONED).evidence(0.9, 10, probe_quality=0.2, weak_probe=True, weak_candidate=True)
    assert ev.quality_condition == "both_flagged"
    assert ev.false_match_rate_is_upper_bound
    assert ev.false_match_rate == pytest.approx(1e-6)


def test_without_conditioned_tables_flagged_pairs_keep_the_old_warning() -> None:
    ev = ScoreCalibrator(CAL).evidence(0.6, 1000, probe_quality=0.2, weak_probe=True, weak_candidate=True)
    assert ev.quality_condition == "clean"
    assert "so strangers may score this high more often" in ev.verdict
    assert "the pack has no table for low-quality faces" in detail(ev)


def test_a_conditioned_table_of_another_model_is_refused() -> None:
    other = dataclasses.replace(BOTH, model_id="other")
    with pytest.raises(ValueError, match="both_flagged table is for other"):
        ScoreCalibrator(dataclasses.replace(CAL, conditioned=(("both_flagged", other),)))
