"""The evidence's sentence is rendered from its fields in one place (facetrace.core.evidence.describe), worded as
it always was: stored case records and tests read those words. The CLI's JSON carries the fields unrounded."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

from facetrace.cli.render import jsonable
from facetrace.core.evidence import describe, headline
from facetrace.core.types import Evidence, ScoreCalibration, StoredHit, Strength
from facetrace.search.calibration import ScoreCalibrator

CLEAN = ScoreCalibration("m", (0.0, 0.2, 0.4, 0.6), (0.5, 1e-2, 1e-4, 1e-6), 10_000_000, "synthetic")
BOTH = ScoreCalibration("m", (0.0, 0.3, 0.6), (0.5, 1e-2, 1e-3), 1_000_000, "degraded alike")
ONE = ScoreCalibration("m", (0.0, 0.15, 0.4, 0.6), (0.6, 0.1, 1e-5, 1e-7), 1_000_000, "degraded vs clean")
CALIBRATORS = {
    "clean": ScoreCalibrator(CLEAN),
    "conditioned": ScoreCalibrator(
        dataclasses.replace(CLEAN, conditioned=(("one_flagged", ONE), ("both_flagged", BOTH)))
    ),
    "uncalibrated": ScoreCalibrator(None),
}
Case = tuple[str, float, int, bool, bool]


def _evidence(case: Case) -> Evidence:
    calibrator, similarity, gallery_size, weak_probe, weak_candidate = case
    return CALIBRATORS[calibrator].evidence(
        similarity, gallery_size, probe_quality=0.5, weak_probe=weak_probe, weak_candidate=weak_candidate
    )


# The sentences the verdict said before it was rendered from fields (the same code path for every reader).
SENTENCES: list[tuple[Case, str]] = [
    (
        ("clean", 0.6, 1000, False, False),
        (
            "strong lead: a stranger scores this high 1 in 1,000,000 comparisons; in this gallery of 1,000 "
            "faces, chance that some stranger does: 0.001"
        ),
    ),
    (
        ("clean", 0.9, 12345, False, False),
        (
            "strong lead: a stranger scores this high below 1 in 10,000,000 comparisons; in this gallery of "
            "12,345 faces, chance that some stranger does: below 0.0012"
        ),
    ),
    (
        ("clean", 0.45, 1000, False, False),
        (
            "moderate lead: a stranger scores this high 1 in 31,623 comparisons; in this gallery of 1,000 "
            "faces, chance that some stranger does: 0.031"
        ),
    ),
    (
        ("clean", 0.2, 1000000, False, False),
        (
            "weak: strangers this similar are expected: a stranger scores this high 1 in 100 comparisons; in "
            "this gallery of 1,000,000 faces, chance that some stranger does: 1"
        ),
    ),
    (
        ("conditioned", 0.6, 1000, True, True),
        (
            "weak: strangers this similar are expected: a stranger scores this high 1 in 1,000 comparisons; "
            "in this gallery of 1,000 faces, chance that some stranger does: 0.63; low-quality probe and "
            "candidate face: rate from the table of impostor pairs with both faces low-quality (higher than "
            "the clean table's)"
        ),
    ),
    (
        ("conditioned", 0.1, 10, True, False),
        (
            "weak: strangers this similar are expected: a stranger scores this high 1 in 6 comparisons; in "
            "this gallery of 10 faces, chance that some stranger does: 0.87; low-quality probe face: rate "
            "from the table of impostor pairs with one low-quality face (higher than the clean table's)"
        ),
    ),
    (
        ("conditioned", 0.4, 10, False, True),
        (
            "moderate lead: a stranger scores this high 1 in 10,000 comparisons; in this gallery of 10 faces, "
            "chance that some stranger does: 0.001; low-quality candidate face: rate from the clean table, "
            "which is higher here than the table of impostor pairs with one low-quality face"
        ),
    ),
    (
        ("clean", 0.6, 1000, True, False),
        (
            "strong lead: a stranger scores this high 1 in 1,000,000 comparisons; in this gallery of 1,000 "
            "faces, chance that some stranger does: 0.001; low-quality probe face: rates measured on good "
            "photos may understate the risk"
        ),
    ),
    (
        ("clean", 0.6, 1000, False, True),
        (
            "strong lead: a stranger scores this high 1 in 1,000,000 comparisons; in this gallery of 1,000 "
            "faces, chance that some stranger does: 0.001; low-quality candidate face: rates measured on good "
            "photos may understate the risk"
        ),
    ),
    (
        ("clean", 0.6, 1000, True, True),
        (
            "strong lead: a stranger scores this high 1 in 1,000,000 comparisons; in this gallery of 1,000 "
            "faces, chance that some stranger does: 0.001; low-quality probe and candidate face: rates "
            "measured on good photos may understate the risk"
        ),
    ),
    (
        ("uncalibrated", 0.9, 10, False, False),
        ("uncalibrated model pack: this score has no measured false-match rate; treat as a lead only"),
    ),
    (
        ("clean", -0.5, 3, False, False),
        (
            "weak: strangers this similar are expected: a stranger scores this high 50% comparisons; in this "
            "gallery of 3 faces, chance that some stranger does: 0.88"
        ),
    ),
    (
        ("clean", 0.3, 1, False, False),
        (
            "moderate lead: a stranger scores this high 1 in 1,000 comparisons; in this gallery of 1 faces, "
            "chance that some stranger does: 0.001"
        ),
    ),
]


@pytest.mark.parametrize(("case", "sentence"), SENTENCES)
def test_the_sentence_is_worded_as_it_was(case: Case, sentence: str) -> None:
    evidence = _evidence(case)
    assert describe(evidence) == sentence
    assert evidence.verdict == sentence  # the property is the same rendering


def test_every_strength_heads_its_sentence_and_names_its_badge() -> None:
    seen = set()
    for case, sentence in SENTENCES:
        evidence = _evidence(case)
        seen.add(evidence.strength)
        assert sentence.split(":", 1)[0] == headline(evidence.strength)
        assert evidence.calibrated == (evidence.strength is not Strength.UNCALIBRATED)
    assert seen == set(Strength)
    assert [headline(s) for s in Strength] == ["strong lead", "moderate lead", "weak", "uncalibrated model pack"]


def test_flags_and_tables_are_fields() -> None:
    both = _evidence(("conditioned", 0.6, 1000, True, True))
    assert (both.weak_probe, both.weak_candidate, both.pair_condition) == (True, True, "both_flagged")
    assert both.quality_condition == "both_flagged" and both.condition_table_measured
    clean_higher = _evidence(("conditioned", 0.4, 10, False, True))
    assert clean_higher.pair_condition == "one_flagged" and clean_higher.quality_condition == "clean"
    assert clean_higher.condition_table_measured
    unmeasured = _evidence(("clean", 0.6, 1000, True, False))
    assert unmeasured.pair_condition == "one_flagged" and not unmeasured.condition_table_measured


def _stated_one_in(sentence: str) -> int:
    found = re.search(r"scores this high (?:below )?1 in ([\d,]+) comparisons", sentence)
    assert found, sentence
    return int(found.group(1).replace(",", ""))


def test_the_cli_json_keeps_a_strong_hits_rate_at_full_precision() -> None:
    # A rate of about 1 in 3.8 million: rounded to 6 decimals it printed as 0.0 beside a sentence saying otherwise.
    deep = ScoreCalibrator(ScoreCalibration("m", (0.0, 0.4, 0.8), (0.5, 1e-4, 1e-8), 10**9, "synthetic"))
    similarity = 0.4 + (math.log10(3.8e6) - 4) / 10  # log10 FMR falls by 1 per 0.1 from 0.4 on
    evidence = deep.evidence(similarity, 100, probe_quality=0.9, weak_probe=False, weak_candidate=False)
    assert evidence.strength is Strength.STRONG and not evidence.false_match_rate_is_upper_bound
    assert round(evidence.false_match_rate, 6) == 0.0  # what the JSON used to say
    assert "1 in 3,800,000 comparisons" in describe(evidence)
    out = json.loads(json.dumps(jsonable(StoredHit(0, 1, 42, evidence))))
    data = out["evidence"]
    assert data["false_match_rate"] == evidence.false_match_rate > 0
    assert data["gallery_false_match_probability"] == evidence.gallery_false_match_probability
    assert data["strength"] == "strong" and data["verdict"] == describe(evidence)
    assert abs(1 / data["false_match_rate"] - _stated_one_in(data["verdict"])) <= 0.5
    assert data["calibrated"] and data["pair_condition"] == "clean" and data["quality_condition"] == "clean"


def test_the_cli_json_of_an_uncalibrated_hit_has_null_rates() -> None:
    data = jsonable(_evidence(("uncalibrated", 0.9, 10, False, False)))
    assert data["false_match_rate"] is None and data["strength"] == "uncalibrated" and not data["calibrated"]
