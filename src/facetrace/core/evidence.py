"""The one place evidence is worded: the sentence a reviewer reads, and the calibration note behind it, rendered
from an Evidence's fields.

describe() says in plain words how rare a stranger scoring this high is, in one comparison and in this gallery, and
whether a face's low quality may make it less rare. detail() is the note for who wants to check it: the similarity,
the rates in full and the impostor table they were read from. Every reader (CLI, API, web UI, HTML and PDF case
reports, and the catalog's `verdict` column, which keeps the sentence as shown) gets its text from here; badges read
Evidence.strength and the weak flags, never the sentence. The strength itself is decided where the rates are
computed (facetrace.search.calibration).

Hits stored before revision 0005 kept an earlier wording of the sentence only; the catalog reads their fields back
from it (catalog/governance_store.py, with TABLE_NAMES), and shows them in today's words.
"""

from __future__ import annotations

import math

from facetrace.core.types import CLEAN_CONDITION, Evidence, Strength

# The head of each sentence, before its first colon; a badge shows the part before the colon (headline()).
_HEADS = {
    Strength.STRONG: "strong lead",
    Strength.MODERATE: "moderate lead",
    Strength.WEAK: "weak: strangers this similar are expected",
    Strength.UNCALIBRATED: "uncalibrated model pack",
}
_UNCALIBRATED = "uncalibrated model pack: this score has no measured false-match rate; treat as a lead only"
# How the note (and earlier sentences) name a quality-conditioned impostor table.
TABLE_NAMES = {
    "one_flagged": "the table of impostor pairs with one low-quality face",
    "both_flagged": "the table of impostor pairs with both faces low-quality",
}
# A gallery-wide probability this close to 1 is said as "almost certainly", not as a number that rounds to 1.
_ALMOST_CERTAIN = 0.995
_SCALES = ((1e9, "billion"), (1e6, "million"))


def headline(strength: Strength) -> str:
    """A badge's words: "strong lead", "moderate lead", "weak" or "uncalibrated model pack"."""
    return _HEADS[strength].split(":", 1)[0]


def _two_figures(value: float) -> float:
    return float(f"{value:.2g}")


def one_in(rate: float) -> str:
    """A rate as people read it, to two figures: "1 in 5 million", "1 in 32,000", or "63%" from one half up."""
    if rate <= 0:
        return "none"
    if rate >= 0.5:
        return f"{rate:.0%}"
    count = _two_figures(1 / rate)
    for scale, word in _SCALES:
        if count >= scale:
            return f"1 in {count / scale:g} {word}"
    return f"1 in {count:,.0f}"


def probability(p: float) -> str:
    """A probability as a plain decimal to two figures, never in e-notation: 0.63, 0.031, 0.000085."""
    rounded = _two_figures(p)
    if rounded <= 0:
        return "0"
    decimals = max(2, 1 - math.floor(math.log10(rounded)))
    return f"{rounded:.{decimals}f}".rstrip("0").rstrip(".")


def _faces(count: int) -> str:
    return f"{count:,} face" if count == 1 else f"{count:,} faces"


def _low_quality(evidence: Evidence) -> str:
    """Which faces are of low quality, as the subject of a clause: "the probe face is", "both faces are"."""
    if evidence.weak_probe and evidence.weak_candidate:
        return "both faces are"
    return "the probe face is" if evidence.weak_probe else "the candidate face is"


def describe(evidence: Evidence) -> str:
    """The verdict in plain words: how many strangers score this high, whether some stranger in this gallery would,
    and what the faces' low quality does to that."""
    if evidence.strength is Strength.UNCALIBRATED:
        return _UNCALIBRATED
    bounded = evidence.false_match_rate_is_upper_bound
    rate = evidence.false_match_rate
    if rate <= 0:
        strangers = "no stranger measured scores this high"
    elif rate >= 0.5:
        strangers = f"{'under ' if bounded else 'about '}{one_in(rate)} of strangers score this high"
    else:
        strangers = f"{'fewer than' if bounded else 'about'} {one_in(rate)} strangers score this high"
    p = evidence.gallery_false_match_probability
    someone = "a stranger" if evidence.gallery_size == 1 else "some stranger"
    gallery = f"in a gallery of {_faces(evidence.gallery_size)}, {someone} would"
    if p >= _ALMOST_CERTAIN and not bounded:
        gallery += " almost certainly score this high"
    else:
        gallery += f" score this high with probability {'below ' if bounded else ''}{probability(p)}"
    sentence = f"{_HEADS[evidence.strength]}: {strangers}; {gallery}"
    if not (evidence.weak_probe or evidence.weak_candidate):
        return sentence
    if evidence.quality_condition != CLEAN_CONDITION or evidence.condition_table_measured:
        return f"{sentence}; {_low_quality(evidence)} of low quality, and the rate allows for it"
    return f"{sentence}; {_low_quality(evidence)} of low quality, so strangers may score this high more often"


def detail(evidence: Evidence) -> str:
    """The calibration note behind the sentence: the similarity, the rates in full and where they come from."""
    similarity = f"Similarity {evidence.similarity:.3f} (the cosine of the two faces' embeddings; not a probability)."
    if evidence.strength is Strength.UNCALIBRATED:
        return f"{similarity} The model pack has no impostor table, so no false-match rate can be read for it."
    bound = "at most " if evidence.false_match_rate_is_upper_bound else ""
    rates = (
        f"{similarity} False-match rate: {bound}{evidence.false_match_rate:.3g} per comparison with a stranger"
        f"{' (the score lies beyond the calibration, so this is an upper bound)' if bound else ''}; over "
        f"{_faces(evidence.gallery_size)}, 1 - (1 - rate)^N = {bound}{evidence.gallery_false_match_probability:.3g}."
    )
    condition = evidence.quality_condition
    if condition != CLEAN_CONDITION:
        return f"{rates} Rate from {TABLE_NAMES.get(condition, condition)} (higher than the clean table's)."
    if not (evidence.weak_probe or evidence.weak_candidate):
        return f"{rates} Rate from the clean table (impostor pairs of good-quality faces)."
    if evidence.condition_table_measured:
        pair = evidence.pair_condition
        return f"{rates} Rate from the clean table, which is higher here than {TABLE_NAMES.get(pair, pair)}."
    return f"{rates} Rate from the clean table: the pack has no table for low-quality faces, so it may understate."
