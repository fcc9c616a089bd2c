"""The one place evidence is worded: the sentence a reviewer reads, rendered from an Evidence's fields.

Every reader (CLI, API, web UI, HTML and PDF case reports, and the catalog's `verdict` column, which keeps the
sentence as shown) gets its text from describe(); badges read Evidence.strength and the weak flags, never the
sentence. The strength itself is decided where the rates are computed (facetrace.search.calibration).
"""

from __future__ import annotations

from facetrace.core.types import CLEAN_CONDITION, Evidence, Strength

# The head of each sentence, before its first colon; a badge shows the part before the colon (headline()).
_HEADS = {
    Strength.STRONG: "strong lead",
    Strength.MODERATE: "moderate lead",
    Strength.WEAK: "weak: strangers this similar are expected",
    Strength.UNCALIBRATED: "uncalibrated model pack",
}
_UNCALIBRATED = "uncalibrated model pack: this score has no measured false-match rate; treat as a lead only"
# How a sentence names a quality-conditioned impostor table.
TABLE_NAMES = {
    "one_flagged": "the table of impostor pairs with one low-quality face",
    "both_flagged": "the table of impostor pairs with both faces low-quality",
}


def headline(strength: Strength) -> str:
    """A badge's words: "strong lead", "moderate lead", "weak" or "uncalibrated model pack"."""
    return _HEADS[strength].split(":", 1)[0]


def one_in(rate: float) -> str:
    """A rate as people read it: "1 in 3,800,000" (or a percentage from one half up)."""
    if rate <= 0:
        return "never"
    return f"1 in {1 / rate:,.0f}" if rate < 0.5 else f"{rate:.0%}"


def describe(evidence: Evidence) -> str:
    """The verdict sentence: how often a stranger scores this high, in one comparison and in this gallery, and
    what the faces' quality does to that."""
    if evidence.strength is Strength.UNCALIBRATED:
        return _UNCALIBRATED
    bound = "below " if evidence.false_match_rate_is_upper_bound else ""
    rate = f"a stranger scores this high {bound}{one_in(evidence.false_match_rate)} comparisons"
    sentence = (
        f"{_HEADS[evidence.strength]}: {rate}; in this gallery of {evidence.gallery_size:,} faces, chance that some "
        f"stranger does: {bound}{evidence.gallery_false_match_probability:.2g}"
    )
    weak = [w for w, flag in (("probe", evidence.weak_probe), ("candidate", evidence.weak_candidate)) if flag]
    if not weak:
        return sentence
    faces = f"low-quality {' and '.join(weak)} face"
    table = evidence.quality_condition
    if table != CLEAN_CONDITION:
        return f"{sentence}; {faces}: rate from {TABLE_NAMES.get(table, table)} (higher than the clean table's)"
    if evidence.condition_table_measured:
        condition = evidence.pair_condition
        return (
            f"{sentence}; {faces}: rate from the clean table, which is higher here than "
            f"{TABLE_NAMES.get(condition, condition)}"
        )
    return f"{sentence}; {faces}: rates measured on good photos may understate the risk"
