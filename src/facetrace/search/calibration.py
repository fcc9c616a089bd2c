"""From a similarity score to what it means: the false-match rate for this gallery size and this probe.

FMR(s) is read from the pack's impostor score table (interpolated in log space, since FMR spans many decades).
In a gallery of N faces of strangers, the chance that at least one of them scores >= s is 1 - (1 - FMR(s))^N,
computed as -expm1(N * log1p(-FMR)) so that tiny rates stay exact.

Quality-conditioned tables (measured on degraded LFW copies, evaluation/quality_calibration.py): when one or both
faces of a comparison carry a quality flag and the pack has a table for that condition, the rate is read from it if
it is HIGHER than the clean table's: low-quality faces may match strangers more often, never less trusted than clean.

The strength of a lead is decided here (strength()); the sentence is worded in one place, facetrace.core.evidence.
"""

from __future__ import annotations

import math

import numpy as np

from facetrace.core.types import (
    CLEAN_CONDITION,
    Evidence,
    QualityCondition,
    ScoreCalibration,
    Strength,
    quality_condition,
)

STRONG_GALLERY_FMP = 0.01
MODERATE_GALLERY_FMP = 0.2
# A small gallery makes any score look unlikely to be a coincidence; these floors keep a score that strangers reach
# often (per comparison) from being called a lead however few faces were searched.
STRONG_MAX_FMR = 1e-5
MODERATE_MAX_FMR = 1e-3


class ScoreCalibrator:
    def __init__(self, calibration: ScoreCalibration | None) -> None:
        self._cal = calibration
        self._conditioned: dict[str, ScoreCalibrator] = {}
        if calibration is not None:
            sims = np.asarray(calibration.similarities, dtype=np.float64)
            fmrs = np.asarray(calibration.false_match_rates, dtype=np.float64)
            if sims.size < 2 or sims.size != fmrs.size or np.any(np.diff(sims) <= 0):
                raise ValueError(f"calibration of {calibration.model_id}: similarities must ascend and match rates")
            keep = fmrs > 0
            self._sims = sims[keep]
            self._log_fmr = np.log10(fmrs[keep])
            # The smallest rate the measurement can resolve: one impostor pair in all those measured.
            self._floor = 1.0 / max(1, calibration.impostor_pairs)
            for condition, table in calibration.conditioned:
                if table.model_id != calibration.model_id:
                    raise ValueError(f"{condition} table is for {table.model_id}, not {calibration.model_id}")
                self._conditioned[condition] = ScoreCalibrator(table)

    @property
    def conditions(self) -> tuple[str, ...]:
        """The quality conditions with a table of their own (besides clean)."""
        return tuple(self._conditioned)

    @property
    def calibrated(self) -> bool:
        return self._cal is not None

    def false_match_rate(self, similarity: float) -> tuple[float, bool]:
        """(FMR(s), is_upper_bound). Beyond the highest measured impostor score FMR is only known to be below
        the measurement's resolution, so that bound is returned and flagged."""
        if self._cal is None:
            return (math.nan, False)
        if similarity <= self._sims[0]:
            return (float(10 ** self._log_fmr[0]), False)
        if similarity > self._sims[-1]:
            return (min(self._floor, float(10 ** self._log_fmr[-1])), True)
        return (float(10 ** np.interp(similarity, self._sims, self._log_fmr)), False)

    def similarity_at(self, false_match_rate: float) -> float:
        """The similarity at which a stranger's comparison scores this high with this rate (the inverse of FMR)."""
        if self._cal is None:
            raise ValueError("an uncalibrated pack has no similarity for a false-match rate")
        target = np.log10(max(false_match_rate, 1e-300))
        # log FMR descends as similarity ascends: interpolate on the reversed arrays.
        return float(np.interp(target, self._log_fmr[::-1], self._sims[::-1]))

    def evidence(
        self,
        similarity: float,
        gallery_size: int,
        *,
        probe_quality: float,
        weak_probe: bool,
        weak_candidate: bool,
    ) -> Evidence:
        fmr, upper = self.false_match_rate(similarity)
        pair_condition = quality_condition(weak_probe, weak_candidate)
        used: QualityCondition = CLEAN_CONDITION
        conditioned = self._conditioned.get(pair_condition)
        if conditioned is not None:
            conditioned_fmr, conditioned_upper = conditioned.false_match_rate(similarity)
            # Only ever more pessimistic: the clean rate stands wherever the flagged pairs' table is lower.
            if conditioned_fmr > fmr:
                fmr, upper, used = conditioned_fmr, conditioned_upper, pair_condition
        if math.isnan(fmr):
            gallery_fmp = math.nan
        else:
            n = max(1, gallery_size)
            gallery_fmp = 1.0 if fmr >= 1.0 else -math.expm1(n * math.log1p(-fmr))
        return Evidence(
            similarity=similarity,
            strength=strength(fmr, gallery_fmp),
            false_match_rate=fmr,
            gallery_size=gallery_size,
            gallery_false_match_probability=gallery_fmp,
            probe_quality=probe_quality,
            weak_probe=weak_probe,
            weak_candidate=weak_candidate,
            false_match_rate_is_upper_bound=upper,
            quality_condition=used,
            condition_table_measured=conditioned is not None,
        )


def strength(false_match_rate: float, gallery_false_match_probability: float) -> Strength:
    """How far a score is a lead: by the chance some stranger in the gallery scores this high, with floors on the
    per-comparison rate. NaN rates (an uncalibrated pack) have no strength."""
    if math.isnan(false_match_rate):
        return Strength.UNCALIBRATED
    if gallery_false_match_probability < STRONG_GALLERY_FMP and false_match_rate <= STRONG_MAX_FMR:
        return Strength.STRONG
    if gallery_false_match_probability < MODERATE_GALLERY_FMP and false_match_rate <= MODERATE_MAX_FMR:
        return Strength.MODERATE
    return Strength.WEAK
