"""The evidence's sentence is rendered from its fields in one place (facetrace.core.evidence.describe), in plain
words, with the calibration detail in a note (detail); hits stored in the earlier wording read back from it
(tests/contract/test_evidence_contract.py). The CLI's JSON carries the fields unrounded."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

from facetrace.cli.render import jsonable
from facetrace.core.evidence import describe, detail, headline, one_in, probability
from facetrace.core.types import Evidence, ScoreCalibration, StoredHit, Strength
from facetrace.core.vocabulary import MinStrength
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


# Each kind of sentence in today's words: plain counts of strangers first, the table it came from in the note.
SENTENCES: list[tuple[Case, str]] = [
    (
        ("clean", 0.6, 1000, False, False),
        (
            "strong lead: about 1 in 1 million strangers score this high; in a gallery of 1,000 faces, some "
            "stranger would score this high with probability 0.001"
        ),
    ),
    (
        ("clean", 0.9, 12345, False, False),
        (
            "strong lead: fewer than 1 in 10 million strangers score this high; in a gallery of 12,345 faces, "
            "some stranger would score this high with probability below 0.0012"
        ),
    ),
    (
        ("clean", 0.45, 1000, False, False),
        (
            "moderate lead: about 1 in 32,000 strangers score this high; in a gallery of 1,000 faces, some "
            "stranger would score this high with probability 0.031"
        ),
    ),
    (
        ("clean", 0.2, 1000000, False, False),
        (
            "weak: strangers this similar are expected: about 1 in 100 strangers score this high; in a gallery "
            "of 1,000,000 faces, some stranger would almost certainly score this high"
        ),
    ),
    (
        ("conditioned", 0.6, 1000, True, True),
        (
            "weak: strangers this similar are expected: about 1 in 1,000 strangers score this high; in a "
            "gallery of 1,000 faces, some stranger would score this high with probability 0.63; both faces are "
            "of low quality, and the rate allows for it"
        ),
    ),
    (
        ("conditioned", 0.1, 10, True, False),
        (
            "weak: strangers this similar are expected: about 1 in 6 strangers score this high; in a gallery of "
            "10 faces, some stranger would score this high with probability 0.87; the probe face is of low "
            "quality, and the rate allows for it"
        ),
    ),
    (
        ("conditioned", 0.4, 10, False, True),
        (
            "moderate lead: about 1 in 10,000 strangers score this high; in a gallery of 10 faces, some "
            "stranger would score this high with probability 0.001; the candidate face is of low quality, and "
            "the rate allows for it"
        ),
    ),
    (
        ("clean", 0.6, 1000, True, False),
        (
            "strong lead: about 1 in 1 million strangers score this high; in a gallery of 1,000 faces, some "
            "stranger would score this high with probability 0.001; the probe face is of low quality, so "
            "strangers may score this high more often"
        ),
    ),
    (
        ("clean", 0.6, 1000, False, True),
        (
            "strong lead: about 1 in 1 million strangers score this high; in a gallery of 1,000 faces, some "
            "stranger would score this high with probability 0.001; the candidate face is of low quality, so "
            "strangers may score this high more often"
        ),
    ),
    (
        ("clean", 0.6, 1000, True, True),
        (
            "strong lead: about 1 in 1 million strangers score this high; in a gallery of 1,000 faces, some "
            "stranger would score this high with probability 0.001; both faces are of low quality, so strangers "
            "may score this high more often"
        ),
    ),
    (
        ("uncalibrated", 0.9, 10, False, False),
        ("uncalibrated model pack: this score has no measured false-match rate; treat as a lead only"),
    ),
    (
        ("clean", -0.5, 3, False, False),
        (
            "weak: strangers this similar are expected: about 50% of strangers score this high; in a gallery of "
            "3 faces, some stranger would score this high with probability 0.88"
        ),
    ),
    (
        ("clean", 0.3, 1, False, False),
        (
            "moderate lead: about 1 in 1,000 strangers score this high; in a gallery of 1 face, a stranger would "
            "score this high with probability 0.001"
        ),
    ),
]
# Which impostor table each case's note names (the sentence itself says only whether the rate allows for quality).
NOTES = {
    ("conditioned", 0.6, 1000, True, True): "Rate from the table of impostor pairs with both faces low-quality",
    ("conditioned", 0.1, 10, True, False): "Rate from the table of impostor pairs with one low-quality face",
    ("conditioned", 0.4, 10, False, True): "Rate from the clean table, which is higher here than the table of",
    ("clean", 0.6, 1000, True, False): "the pack has no table for low-quality faces",
    ("clean", 0.9, 12345, False, False): "at most 1e-07 per comparison",
    ("uncalibrated", 0.9, 10, False, False): "no false-match rate can be read",
}


@pytest.mark.parametrize(("case", "sentence"), SENTENCES)
def test_the_sentence_is_worded_in_plain_words(case: Case, sentence: str) -> None:
    evidence = _evidence(case)
    assert describe(evidence) == sentence
    assert evidence.verdict == sentence  # the property is the same rendering
    # No jargon in the sentence: no e-notation, no table, no bare "chance: 1", no "1 faces".
    assert not re.search(r"\de-\d|table|chance|\b1 faces", sentence)
    note = detail(evidence)
    assert note.startswith(f"Similarity {evidence.similarity:.3f} ")
    assert NOTES.get(case, "Rate from the clean table") in note


@pytest.mark.parametrize(
    ("rate", "words"),
    [
        (2e-7, "1 in 5 million"),
        (1 / 3.8e6, "1 in 3.8 million"),
        (8.5e-5, "1 in 12,000"),
        (1e-10, "1 in 10 billion"),
        (0.73, "73%"),
        (0.0, "none"),
    ],
)
def test_rates_read_as_counts_to_two_figures(rate: float, words: str) -> None:
    assert one_in(rate) == words


@pytest.mark.parametrize(
    ("p", "words"), [(8.5e-5, "0.000085"), (1e-4, "0.0001"), (0.6321, "0.63"), (0.031, "0.031"), (0.0, "0")]
)
def test_probabilities_are_plain_decimals(p: float, words: str) -> None:
    assert probability(p) == words


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


def test_the_cli_json_keeps_a_strong_hits_rate_at_full_precision() -> None:
    # A rate of about 1 in 3.8 million: rounded to 6 decimals it printed as 0.0 beside a sentence saying otherwise.
    deep = ScoreCalibrator(ScoreCalibration("m", (0.0, 0.4, 0.8), (0.5, 1e-4, 1e-8), 10**9, "synthetic"))
    similarity = 0.4 + (math.log10(3.8e6) - 4) / 10  # log10 FMR falls by 1 per 0.1 from 0.4 on
    evidence = deep.evidence(similarity, 100, probe_quality=0.9, weak_probe=False, weak_candidate=False)
    assert evidence.strength is Strength.STRONG and not evidence.false_match_rate_is_upper_bound
    assert round(evidence.false_match_rate, 6) == 0.0  # what the JSON used to say
    assert "about 1 in 3.8 million strangers" in describe(evidence)
    out = json.loads(json.dumps(jsonable(StoredHit(0, 1, 42, evidence))))
    data = out["evidence"]
    assert data["false_match_rate"] == evidence.false_match_rate > 0
    assert data["gallery_false_match_probability"] == evidence.gallery_false_match_probability
    assert data["strength"] == "strong" and data["verdict"] == describe(evidence)
    assert f"{data['false_match_rate']:.3g}" in detail(evidence)  # the note states the rate to three figures
    assert data["calibrated"] and data["pair_condition"] == "clean" and data["quality_condition"] == "clean"


def test_the_cli_json_of_an_uncalibrated_hit_has_null_rates() -> None:
    data = jsonable(_evidence(("uncalibrated", 0.9, 10, False, False)))
    assert data["false_match_rate"] is None and data["strength"] == "uncalibrated" and not data["calibrated"]


def test_a_strength_filter_keeps_what_is_at_least_as_strong() -> None:
    kept = {minimum: [s for s in Strength if minimum.keeps(s)] for minimum in MinStrength}
    assert kept == {
        MinStrength.STRONG: [Strength.STRONG],
        MinStrength.MODERATE: [Strength.STRONG, Strength.MODERATE],
        MinStrength.WEAK: list(Strength),  # every hit, the uncalibrated among them
    }
