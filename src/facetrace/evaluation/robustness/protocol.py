"""The robustness benchmark's protocol (deterministic, from the pairs CSV alone) and its degradation grid.

- the first `folds` folds of the pairs file, `pairs_per_fold` pairs of each (half same-person, half different);
- realistic setting: the second photo of each pair is degraded (a degraded probe), the first stays clean (a clean
  gallery photo); a degraded photo without a detected face scores -1 (a failure to detect);
- accuracy: each fold is scored at the threshold fitted on the CLEAN scores of the other folds, as a deployment
  would (its threshold does not know that a probe is degraded);
- TAR at the pack's calibrated 1e-3 FMR threshold (read from the pack's impostor table over millions of LFW pairs);
- rank-1: each degraded same-person probe searched against every clean photo of the chosen folds but its own;
- impostors: every degraded probe against every clean photo of another person (hundreds of thousands of pairs per
  condition); those scoring at or above the 1e-3 threshold are the dangerous ones, and the report gives the share
  of them in which the probe or the gallery face carries a quality flag;
- profile views: pairs of the selected folds (all of their pairs, clean) in which one face's estimated |yaw| is at
  least PROFILE_MIN_YAW_DEG, a condition of its own.
The degradations are vision/degradations.py's registry, each at its strengths unless named on the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import numpy.typing as npt

from facetrace.evaluation.datasets import VerificationPair

DEFAULT_FOLDS = 2
# 200 pairs per fold (100 same, 100 different) x 2 folds: ~400 degraded probes per condition. A probe costs 40 ms on
# an idle 2-core machine and 100-130 ms while five other jobs share it, so the 30 condition-strengths take 8-25 min.
DEFAULT_PAIRS_PER_FOLD = 200
CALIBRATED_FMR = 1e-3
# A face turned this far (estimated from the landmarks) counts as a profile view: the quality module's bound. 3.5% of
# the 1,583 photos of LFW's first two folds are beyond it (at 30 degrees a third of the pairs would be "profile").
PROFILE_MIN_YAW_DEG = 45.0  # = vision.quality.MAX_FRONTAL_YAW_DEG (not imported: this module loads without OpenCV)
CLEAN = "clean"
PROFILE = "profile_views"

# (degradation name, strength, unit of the strength)
ConditionSpec = tuple[str, float, str]


def default_conditions() -> tuple[ConditionSpec, ...]:
    """Every registered degradation at every strength, in registry order."""
    from facetrace.vision.degradations import CONDITIONS

    return tuple((spec.name, strength, spec.unit) for spec in CONDITIONS.values() for strength in spec.strengths)


def parse_conditions(text: str) -> tuple[ConditionSpec, ...]:
    """'gaussian_blur,jpeg=10' -> every strength of gaussian_blur and jpeg at quality 10 (names from the registry)."""
    from facetrace.vision.degradations import CONDITIONS

    chosen: list[ConditionSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, strength = item.partition("=")
        spec = CONDITIONS.get(name.strip())
        if spec is None:
            raise ValueError(f"unknown degradation {name!r}; known: {', '.join(CONDITIONS)}")
        strengths = (float(strength),) if strength else spec.strengths
        chosen.extend((spec.name, value, spec.unit) for value in strengths)
    if not chosen:
        raise ValueError("no degradation named")
    return tuple(chosen)


def select_pairs(
    pairs: Sequence[VerificationPair], folds: int, pairs_per_fold: int
) -> tuple[tuple[VerificationPair, ...], tuple[VerificationPair, ...]]:
    """(benchmark subset, every pair of the chosen folds): the first folds in order, half same and half different."""
    fold_ids = sorted({pair.fold for pair in pairs})[:folds]
    in_folds = tuple(pair for pair in pairs if pair.fold in fold_ids)
    chosen: list[VerificationPair] = []
    taken: dict[tuple[int, bool], int] = {}
    for pair in in_folds:
        key = (pair.fold, pair.same)
        limit = pairs_per_fold // 2 if pair.same else pairs_per_fold - pairs_per_fold // 2
        if taken.get(key, 0) < limit:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(pair)
    return tuple(chosen), in_folds


def identity_of(path: str) -> str:
    """LFW's identity is the photo's folder name."""
    return PurePosixPath(path).parent.name


@dataclass(frozen=True)
class Subset:
    """Row indices into the clean observations for the benchmark's pairs, probes and gallery."""

    rows_a: npt.NDArray[np.int64]
    rows_b: npt.NDArray[np.int64]
    same: npt.NDArray[np.bool_]
    folds: npt.NDArray[np.int64]
    probe_paths: tuple[str, ...]  # distinct second photos (degraded)
    probe_rows: npt.NDArray[np.int64]  # their rows among the clean observations
    pair_probe: npt.NDArray[np.int64]  # each pair's index into probe_paths
    gallery_rows: npt.NDArray[np.int64]  # every clean photo of the chosen folds
    gallery_identities: npt.NDArray[np.str_]
    probe_identities: npt.NDArray[np.str_]


def subset_of(pairs: Sequence[VerificationPair], gallery_paths: Sequence[str], row_of: dict[str, int]) -> Subset:
    probe_paths = tuple(dict.fromkeys(pair.path_b for pair in pairs))
    probe_index = {path: index for index, path in enumerate(probe_paths)}
    return Subset(
        rows_a=np.array([row_of[pair.path_a] for pair in pairs], dtype=np.int64),
        rows_b=np.array([row_of[pair.path_b] for pair in pairs], dtype=np.int64),
        same=np.array([pair.same for pair in pairs], dtype=np.bool_),
        folds=np.array([pair.fold for pair in pairs], dtype=np.int64),
        probe_paths=probe_paths,
        probe_rows=np.array([row_of[path] for path in probe_paths], dtype=np.int64),
        pair_probe=np.array([probe_index[pair.path_b] for pair in pairs], dtype=np.int64),
        gallery_rows=np.array([row_of[path] for path in gallery_paths], dtype=np.int64),
        gallery_identities=np.array([identity_of(path) for path in gallery_paths], dtype=np.str_),
        probe_identities=np.array([identity_of(path) for path in probe_paths], dtype=np.str_),
    )
