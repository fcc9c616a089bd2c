"""Quality-conditioned calibration: impostor score tables for comparisons in which one or both faces are flagged.

The pack's clean table (evaluation/calibration.py) is measured on good LFW photos. Low-quality faces behave
differently: faces degraded the same way (blurred, occluded, turned) match each other more often than clean strangers
do. This module measures that on the robustness benchmark's degraded LFW copies (vision/degradations.py, the same
probes, seeds and cache as `facetrace eval robustness`) and tabulates FMR(s) separately by how many faces of the
impostor pair carry a quality flag:

- one_flagged: exactly one face of the pair is flagged; both_flagged: both are.
- The impostor pairs pooled, over every degradation and strength: each degraded probe against every clean photo of
  another person (a degraded probe searched in a clean gallery), the degraded probes of different people against
  each other (a gallery gathered through the same bad camera), and the clean photos of the chosen folds among
  themselves (where LFW's own flagged photos - profiles, closed eyes - meet).

The tables go into calibration.json under "conditioned"; the search layer (search/calibration.py) reads a flagged
pair's rate from its table only where that rate is higher than the clean table's.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.core.types import BOTH_FLAGGED, ONE_FLAGGED, ScoreCalibration
from facetrace.evaluation.calibration import (
    DEFAULT_BIN_WIDTH,
    calibration_from_histogram,
    similarity_at_false_match_rate,
)
from facetrace.evaluation.datasets import VerificationPair
from facetrace.evaluation.robustness.benchmark import prepare_benchmark
from facetrace.evaluation.robustness.observations import ArrayAnalyzer, Observations, observe_degraded
from facetrace.evaluation.robustness.protocol import (
    CALIBRATED_FMR,
    DEFAULT_FOLDS,
    DEFAULT_PAIRS_PER_FOLD,
    ConditionSpec,
    default_conditions,
)

# The pool of impostor pairs with no flagged face is measured too (for the report), but not stored: the clean table
# over 87M LFW pairs is the better measurement of it.
NONE_FLAGGED = "none_flagged"
_POOLS = (NONE_FLAGGED, ONE_FLAGGED, BOTH_FLAGGED)
# Similarities at which the report compares the tables (the range where leads are judged).
_REPORT_SIMILARITIES = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


@dataclass(frozen=True)
class PoolSummary:
    """One pool of impostor pairs (by how many faces are flagged)."""

    pool: str
    impostor_pairs: int
    similarity_at_fmr: float | None  # the lowest similarity whose FMR in this pool is <= CALIBRATED_FMR
    fmr_at_clean_threshold: float  # FMR in this pool at the clean table's CALIBRATED_FMR similarity
    pairs_by_source: dict[str, int]  # "vs_clean", "alike", "clean_photos"


@dataclass(frozen=True)
class QualityCalibrationReport:
    model_id: str
    clean_threshold: float  # the clean table's similarity at CALIBRATED_FMR
    pools: tuple[PoolSummary, ...]
    # (similarity, clean FMR, one_flagged FMR, both_flagged FMR) at a few similarities: where the tables differ.
    comparison: tuple[tuple[float, float, float | None, float | None], ...]
    conditions: tuple[str, ...]
    pairs: int
    seed: int
    seconds: float
    calibration: ScoreCalibration  # the clean table with the conditioned ones attached

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("calibration")
        data["tables"] = {
            condition: {"impostor_pairs": table.impostor_pairs, "points": len(table.similarities)}
            for condition, table in self.calibration.conditioned
        }
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        lines = [
            f"model {self.model_id}: impostor pairs of {self.pairs} benchmark pairs' photos under "
            f"{len(self.conditions)} degradations (seed {self.seed}); clean table: FMR {CALIBRATED_FMR:g} at "
            f"similarity {self.clean_threshold:.4f}",
            "",
            "| pool | impostor pairs | vs clean / alike / clean photos | similarity at FMR 1e-3 | "
            f"FMR at {self.clean_threshold:.4f} |",
            "|---|---|---|---|---|",
        ]
        for pool in self.pools:
            sources = " / ".join(f"{pool.pairs_by_source.get(k, 0):,}" for k in ("vs_clean", "alike", "clean_photos"))
            at = "n/a" if pool.similarity_at_fmr is None else f"{pool.similarity_at_fmr:.3f}"
            lines.append(
                f"| {pool.pool} | {pool.impostor_pairs:,} | {sources} | {at} | {pool.fmr_at_clean_threshold:.1e} |"
            )
        lines += ["", "| similarity | clean FMR | one_flagged FMR | both_flagged FMR |", "|---|---|---|---|"]
        for similarity, clean, one, both in self.comparison:
            lines.append(f"| {similarity:.2f} | {clean:.1e} | {_rate(one)} | {_rate(both)} |")
        lines.append(f"took {self.seconds:.0f} s")
        return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1e}"


class _Histograms:
    """Impostor score counts per pool (by flagged faces) in bins of bin_width over [-1, 1], and pairs per source."""

    def __init__(self, bin_width: float, threshold: float) -> None:
        self.bin_width = bin_width
        self.threshold = threshold
        self.at_or_above = np.zeros(len(_POOLS), dtype=np.int64)  # pairs scoring >= threshold, exactly
        self.bins = round(2.0 / bin_width)
        self.counts = np.zeros((len(_POOLS), self.bins), dtype=np.int64)
        self.by_source: list[dict[str, int]] = [{} for _ in _POOLS]

    def add(self, scores: npt.NDArray[Any], flagged_faces: npt.NDArray[Any], source: str) -> None:
        selected = np.clip(np.asarray(scores, dtype=np.float64), -1.0, 1.0)
        indices = np.minimum(np.floor((selected + 1.0) / self.bin_width).astype(np.int64), self.bins - 1)
        for pool in range(len(_POOLS)):
            in_pool = flagged_faces == pool
            chosen = indices[in_pool]
            self.at_or_above[pool] += int(np.count_nonzero(selected[in_pool] >= self.threshold))
            self.counts[pool] += np.bincount(chosen, minlength=self.bins)
            self.by_source[pool][source] = self.by_source[pool].get(source, 0) + int(chosen.size)

    @property
    def edges(self) -> npt.NDArray[np.float64]:
        return np.round(-1.0 + self.bin_width * np.arange(self.bins), 6)


def _add_cross(
    histograms: _Histograms,
    probes: Observations,
    probe_ids: npt.NDArray[np.str_],
    gallery: Observations,
    gallery_ids: npt.NDArray[np.str_],
    source: str,
) -> None:
    similarity = probes.vectors @ gallery.vectors.T
    impostor = probes.has_face[:, None] & gallery.has_face[None, :] & (probe_ids[:, None] != gallery_ids[None, :])
    flagged = probes.flagged.astype(np.int64)[:, None] + gallery.flagged.astype(np.int64)[None, :]
    histograms.add(similarity[impostor], flagged[impostor], source)


def _add_among(histograms: _Histograms, faces: Observations, ids: npt.NDArray[np.str_], source: str) -> None:
    similarity = faces.vectors @ faces.vectors.T
    upper = np.triu(np.ones(similarity.shape, dtype=np.bool_), k=1)
    impostor = upper & faces.has_face[:, None] & faces.has_face[None, :] & (ids[:, None] != ids[None, :])
    flagged = faces.flagged.astype(np.int64)[:, None] + faces.flagged.astype(np.int64)[None, :]
    histograms.add(similarity[impostor], flagged[impostor], source)


def measure_quality_calibration(
    analyzer: ArrayAnalyzer,
    pairs: Sequence[VerificationPair],
    root: Path | str,
    calibration: ScoreCalibration,
    *,
    folds: int = DEFAULT_FOLDS,
    pairs_per_fold: int = DEFAULT_PAIRS_PER_FOLD,
    conditions: Sequence[ConditionSpec] | None = None,
    seed: int = 0,
    cache_dir: Path | str | None = None,
    cache_key: str | None = None,
    progress: Callable[[str], None] | None = None,
    bin_width: float = DEFAULT_BIN_WIDTH,
) -> QualityCalibrationReport:
    """Measure the one_flagged and both_flagged tables (see the module docstring) and attach them to calibration.

    With the robustness benchmark's cache_dir and cache key, the clean and degraded observations it stored are
    reused, so nothing is analysed again.
    """
    from facetrace.search.calibration import ScoreCalibrator

    if calibration.model_id != analyzer.model_id:
        raise ValueError(f"the calibration is for {calibration.model_id}, the analyzer is {analyzer.model_id}")
    started = time.perf_counter()
    key = cache_key or analyzer.model_id
    bench = prepare_benchmark(
        analyzer,
        pairs,
        Path(root),
        folds=folds,
        pairs_per_fold=pairs_per_fold,
        cache_dir=cache_dir,
        cache_key=key,
        progress=progress,
    )
    subset = bench.subset
    gallery = bench.clean.take(subset.gallery_rows)
    clean_calibrator = ScoreCalibrator(calibration)
    threshold = clean_calibrator.similarity_at(CALIBRATED_FMR)
    histograms = _Histograms(bin_width, threshold)
    _add_among(histograms, gallery, subset.gallery_identities, "clean_photos")
    chosen = tuple(conditions or default_conditions())
    images = bench.probe_images()
    for number, (name, strength, _unit) in enumerate(chosen, start=1):
        probes = observe_degraded(
            analyzer,
            images,
            subset.probe_paths,
            bench.clean_probes,
            name,
            strength,
            seed=seed,
            cache_dir=cache_dir,
            cache_key=key,
        )
        _add_cross(histograms, probes, subset.probe_identities, gallery, subset.gallery_identities, "vs_clean")
        _add_among(histograms, probes, subset.probe_identities, "alike")
        if progress is not None:
            progress(f"{number}/{len(chosen)} {name} {strength:g}")

    measured_on = (
        f"degraded LFW copies (facetrace eval calibrate-quality): the {len(subset.probe_paths)} probes of "
        f"{len(bench.subset_pairs)} pairs of the first {folds} folds of the pairs file under {len(chosen)} "
        f"degradation strengths (seed {seed}) against the {len(gallery.has_face)} clean photos of those folds and "
        f"each other, plus the clean photos among themselves"
    )
    tables: list[tuple[str, ScoreCalibration]] = []
    for pool, condition in ((1, ONE_FLAGGED), (2, BOTH_FLAGGED)):
        if histograms.counts[pool].sum() == 0:
            continue
        table = calibration_from_histogram(
            histograms.counts[pool],
            histograms.edges,
            model_id=calibration.model_id,
            measured_on=f"{condition} impostor pairs of {measured_on}",
        )
        tables.append((condition, table))
    conditioned = dataclasses.replace(calibration, conditioned=tuple(tables))

    summaries = []
    for pool, name in enumerate(_POOLS):
        counts = histograms.counts[pool]
        total = int(counts.sum())
        at: float | None = None
        if total:
            at = similarity_at_false_match_rate(
                calibration_from_histogram(counts, histograms.edges, model_id=calibration.model_id, measured_on=""),
                CALIBRATED_FMR,
            )
        summaries.append(
            PoolSummary(
                pool=name,
                impostor_pairs=total,
                similarity_at_fmr=at,
                fmr_at_clean_threshold=float(histograms.at_or_above[pool] / total) if total else 0.0,
                pairs_by_source=dict(histograms.by_source[pool]),
            )
        )
    by_condition = {condition: ScoreCalibrator(table) for condition, table in tables}
    comparison = []
    for similarity in _REPORT_SIMILARITIES:
        clean_rate = clean_calibrator.false_match_rate(similarity)[0]
        rates = [
            by_condition[c].false_match_rate(similarity)[0] if c in by_condition else None
            for c in (ONE_FLAGGED, BOTH_FLAGGED)
        ]
        comparison.append((similarity, clean_rate, rates[0], rates[1]))
    return QualityCalibrationReport(
        model_id=calibration.model_id,
        clean_threshold=round(threshold, 6),
        pools=tuple(summaries),
        comparison=tuple(comparison),
        conditions=tuple(f"{name}={strength:g}" for name, strength, _ in chosen),
        pairs=len(bench.subset_pairs),
        seed=seed,
        seconds=round(time.perf_counter() - started, 1),
        calibration=conditioned,
    )
