"""The robustness report: one row per condition and strength, the totals over the degraded conditions, its
Markdown tables and summary, and a side-by-side table of several runs' JSON reports
(scripts/robustness_side_by_side.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from facetrace.evaluation.robustness.protocol import CLEAN, PROFILE


@dataclass(frozen=True)
class ConditionResult:
    """One condition at one strength. Rates are fractions; None where the subset has nothing to measure."""

    condition: str
    strength: float
    unit: str
    pairs: int
    accuracy: float
    tar_at_fmr: float  # genuine pairs scoring >= the calibrated CALIBRATED_FMR threshold
    failure_to_detect: float  # degraded probes without a detected face
    probes_flagged: float  # degraded probes (with a face) carrying a quality flag
    rank1: float | None
    impostor_pairs: int
    impostor_fmr: float  # share of cross impostor pairs at or above the threshold (the calibration says 1e-3)
    high_impostors: int
    high_impostors_flagged: int
    flagged_impostor_pairs: int  # impostor pairs in which the probe or the gallery face carries a flag
    # Both sides degraded alike (a gallery gathered through the same bad camera or pipeline): the degraded probes of
    # different people against each other.
    alike_impostor_pairs: int = 0
    alike_high_impostors: int = 0
    alike_high_impostors_flagged: int = 0
    alike_flagged_impostor_pairs: int = 0

    @property
    def label(self) -> str:
        return self.condition if self.condition in (CLEAN, PROFILE) else f"{self.condition} {self.strength:g}"


@dataclass(frozen=True)
class RobustnessReport:
    model_id: str
    pairs_csv: str
    folds: tuple[int, ...]
    pairs: int
    threshold: float
    threshold_fmr: float
    clean_photos: int
    clean_photos_flagged: float  # share of clean subset photos (with a face) carrying a quality flag
    clean_flag_counts: dict[str, int]
    results: tuple[ConditionResult, ...]
    high_impostors: int  # over all degraded conditions
    high_impostors_flagged: int
    impostor_pairs: int
    flagged_impostor_pairs: int
    alike_high_impostors: int
    alike_high_impostors_flagged: int
    alike_impostor_pairs: int
    alike_flagged_impostor_pairs: int
    seconds: float
    seed: int
    notes: tuple[str, ...] = field(default=())

    @property
    def flagged_share(self) -> float | None:
        return self.high_impostors_flagged / self.high_impostors if self.high_impostors else None

    @property
    def fmr_flagged(self) -> float | None:
        """The false-match rate at the threshold over impostor pairs involving a flagged face (degraded probes)."""
        pairs = self.flagged_impostor_pairs
        return self.high_impostors_flagged / pairs if pairs else None

    @property
    def fmr_unflagged(self) -> float | None:
        pairs = self.impostor_pairs - self.flagged_impostor_pairs
        return (self.high_impostors - self.high_impostors_flagged) / pairs if pairs else None

    @property
    def alike_flagged_share(self) -> float | None:
        high = self.alike_high_impostors
        return self.alike_high_impostors_flagged / high if high else None

    @property
    def alike_fmr_flagged(self) -> float | None:
        pairs = self.alike_flagged_impostor_pairs
        return self.alike_high_impostors_flagged / pairs if pairs else None

    @property
    def alike_fmr_unflagged(self) -> float | None:
        pairs = self.alike_impostor_pairs - self.alike_flagged_impostor_pairs
        return (self.alike_high_impostors - self.alike_high_impostors_flagged) / pairs if pairs else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["flagged_share_of_high_impostors"] = self.flagged_share
        data["alike_flagged_share_of_high_impostors"] = self.alike_flagged_share
        data["alike_fmr_flagged"] = self.alike_fmr_flagged
        data["alike_fmr_unflagged"] = self.alike_fmr_unflagged
        data["fmr_flagged"] = self.fmr_flagged
        data["fmr_unflagged"] = self.fmr_unflagged
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """A Markdown table of accuracy, one row per condition and strength."""
        lines = [
            "| condition | strength | pairs | accuracy % | TAR@FMR1e-3 % | failed to detect % | rank-1 % | "
            "probes flagged % |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in self.results:
            rank1 = "" if row.rank1 is None else f"{row.rank1 * 100:.1f}"
            lines.append(
                f"| {row.condition} | {_strength(row)} | {row.pairs} | {row.accuracy * 100:.1f} | "
                f"{row.tar_at_fmr * 100:.1f} | {row.failure_to_detect * 100:.1f} | {rank1} | "
                f"{row.probes_flagged * 100:.1f} |"
            )
        return "\n".join(lines)

    def impostor_table(self) -> str:
        """A Markdown table of impostors at or above the threshold and how many of them the quality flags mark."""
        lines = [
            "| condition | strength | vs clean: FMR | vs clean: impostors >= threshold (flagged) | "
            "alike: FMR | alike: impostors >= threshold (flagged) |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.results:
            alike_fmr = row.alike_high_impostors / row.alike_impostor_pairs if row.alike_impostor_pairs else 0.0
            lines.append(
                f"| {row.condition} | {_strength(row)} | {row.impostor_fmr:.1e} | "
                f"{row.high_impostors} ({row.high_impostors_flagged}) | {alike_fmr:.1e} | "
                f"{row.alike_high_impostors} ({row.alike_high_impostors_flagged}) |"
            )
        return "\n".join(lines)

    def summary(self) -> str:
        share = self.flagged_share
        alike_share = self.alike_flagged_share
        lines = [
            f"model {self.model_id}: {self.pairs} pairs of folds {','.join(map(str, self.folds))} of {self.pairs_csv}; "
            f"threshold {self.threshold:.4f} (calibrated FMR {self.threshold_fmr:g})",
            self.table(),
            "",
            self.impostor_table(),
            "",
            f"degraded probe vs clean photo of another person, scoring >= the threshold: {self.high_impostors} of "
            f"{self.impostor_pairs:,} pairs; with a flagged probe or gallery face: {self.high_impostors_flagged}"
            + (f" ({share * 100:.1f}%)" if share is not None else ""),
            f"degraded alike, both sides, scoring >= the threshold: {self.alike_high_impostors} of "
            f"{self.alike_impostor_pairs:,} pairs; with a flagged face: {self.alike_high_impostors_flagged}"
            + (f" ({alike_share * 100:.1f}%)" if alike_share is not None else ""),
            f"false-match rate at the threshold: {_rate(self.fmr_flagged)} over the "
            f"{self.flagged_impostor_pairs:,} impostor pairs with a flagged face, {_rate(self.fmr_unflagged)} over the "
            f"{self.impostor_pairs - self.flagged_impostor_pairs:,} without (degraded probe vs clean photo); "
            f"{_rate(self.alike_fmr_flagged)} over the {self.alike_flagged_impostor_pairs:,} with a flagged face, "
            f"{_rate(self.alike_fmr_unflagged)} over the "
            f"{self.alike_impostor_pairs - self.alike_flagged_impostor_pairs:,} without (degraded alike)",
            f"clean photos flagged: {self.clean_photos_flagged * 100:.1f}% of {self.clean_photos} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.clean_flag_counts.items())) or 'none'})",
            f"took {self.seconds:.0f} s",
        ]
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def _strength(row: ConditionResult) -> str:
    return "" if row.condition in (CLEAN, PROFILE) else f"{row.strength:g} {row.unit}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2e}"


def side_by_side_table(reports: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """A Markdown table of several runs' JSON reports (RobustnessReport.to_dict) side by side, one row per condition
    and strength; each cell holds one measure (accuracy, TAR at the calibrated threshold, failures to detect, rank-1,
    in %) for every run, in the order given, separated by " / ".

    The first report is the reference (the plain pipeline); rows follow its order, and a run without a row shows
    "-". Runs must share the model, pairs, seed and threshold, or the comparison means nothing.
    """
    if not reports:
        raise ValueError("no reports to compare")
    first = reports[0][1]
    for label, report in reports[1:]:
        for key in ("model_id", "pairs", "threshold", "seed", "folds"):
            if report.get(key) != first.get(key):
                raise ValueError(f"{label}: {key} {report.get(key)!r} differs from {first.get(key)!r}")
    measures = (
        ("accuracy %", "accuracy"),
        ("TAR@FMR1e-3 %", "tar_at_fmr"),
        ("failed to detect %", "failure_to_detect"),
        ("rank-1 %", "rank1"),
    )
    runs = " / ".join(label for label, _ in reports)
    header = ["condition", "strength"] + [f"{name} ({runs})" for name, _ in measures]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows_of = [{(row["condition"], row["strength"]): row for row in report["results"]} for _, report in reports]
    for row in first["results"]:
        at = (row["condition"], row["strength"])
        strength = "" if row["condition"] in (CLEAN, PROFILE) else f"{row['strength']:g} {row['unit']}"
        cells = [row["condition"], strength]
        for _, field_name in measures:
            values = [rows[at].get(field_name) if at in rows else None for rows in rows_of]
            if all(value is None for value in values):
                cells.append("")
                continue
            cells.append(" / ".join("-" if value is None else f"{value * 100:.1f}" for value in values))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
