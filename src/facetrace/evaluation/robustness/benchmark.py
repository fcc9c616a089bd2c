"""Running the robustness benchmark (the protocol in protocol.py): select the pairs, observe the clean photos, then
degrade the probes condition by condition and score each; prepare_benchmark is shared with the quality calibration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.core.ports import FaceAnalyzer
from facetrace.core.types import ScoreCalibration
from facetrace.evaluation.datasets import VerificationPair, require_files
from facetrace.evaluation.robustness.observations import ArrayAnalyzer, Observations, observe_clean, observe_degraded
from facetrace.evaluation.robustness.protocol import (
    CALIBRATED_FMR,
    CLEAN,
    DEFAULT_FOLDS,
    DEFAULT_PAIRS_PER_FOLD,
    PROFILE,
    ConditionSpec,
    Subset,
    default_conditions,
    select_pairs,
    subset_of,
)
from facetrace.evaluation.robustness.report import RobustnessReport
from facetrace.evaluation.robustness.scoring import measure_condition, measure_profile_views, pair_scores


@dataclass(frozen=True, eq=False)
class Benchmark:
    """The benchmark's pairs and the clean observations they need (shared with the quality calibration)."""

    root: Path
    subset_pairs: tuple[VerificationPair, ...]
    fold_pairs: tuple[VerificationPair, ...]
    row_of: dict[str, int]
    clean: Observations
    subset: Subset
    clean_probes: Observations  # the clean observations of subset.probe_paths

    def probe_images(self) -> list[npt.NDArray[np.uint8]]:
        """The decoded (clean) probe photos, to be degraded."""
        from facetrace.vision.images import decode_image

        return [decode_image((self.root / path).read_bytes(), path) for path in self.subset.probe_paths]


def prepare_benchmark(
    analyzer: FaceAnalyzer,
    pairs: Sequence[VerificationPair],
    root: Path,
    *,
    folds: int,
    pairs_per_fold: int,
    cache_dir: Path | str | None,
    cache_key: str | None,
    progress: Callable[[str], None] | None = None,
) -> Benchmark:
    """Select the pairs and analyse (or load from the cache) every clean photo of the chosen folds."""
    subset_pairs, fold_pairs = select_pairs(pairs, folds, pairs_per_fold)
    if not subset_pairs or not any(p.same for p in subset_pairs) or all(p.same for p in subset_pairs):
        raise ValueError("the chosen folds need both same-person and different-person pairs")
    clean_paths = tuple(dict.fromkeys(path for pair in fold_pairs for path in (pair.path_a, pair.path_b)))
    require_files(clean_paths, root)
    row_of = {path: row for row, path in enumerate(clean_paths)}
    clean = observe_clean(
        analyzer,
        root,
        clean_paths,
        cache_dir=cache_dir,
        cache_key=cache_key or analyzer.model_id,
        progress=(lambda done, total: progress(f"clean photos {done}/{total}")) if progress else None,
    )
    subset = subset_of(subset_pairs, clean_paths, row_of)
    clean_probes = clean.take(subset.probe_rows)
    return Benchmark(root, subset_pairs, fold_pairs, row_of, clean, subset, clean_probes)


def evaluate_robustness(
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
    pairs_csv: str = "",
) -> RobustnessReport:
    """Run the benchmark (see the module docstring). The threshold is the calibration's CALIBRATED_FMR similarity."""
    # The vision layer (OpenCV) is imported here so the CLI's --help and argument errors never load it.
    from facetrace.search.calibration import ScoreCalibrator

    if calibration.model_id != analyzer.model_id:
        raise ValueError(f"the calibration is for {calibration.model_id}, the analyzer is {analyzer.model_id}")
    started = time.perf_counter()
    root_path = Path(root)
    bench = prepare_benchmark(
        analyzer,
        pairs,
        root_path,
        folds=folds,
        pairs_per_fold=pairs_per_fold,
        cache_dir=cache_dir,
        cache_key=cache_key,
        progress=progress,
    )
    subset_pairs, fold_pairs, row_of = bench.subset_pairs, bench.fold_pairs, bench.row_of
    clean, subset, clean_probes = bench.clean, bench.subset, bench.clean_probes
    threshold = ScoreCalibrator(calibration).similarity_at(CALIBRATED_FMR)
    clean_scores = pair_scores(
        clean.vectors[subset.rows_a],
        clean.has_face[subset.rows_a],
        clean.vectors[subset.rows_b],
        clean.has_face[subset.rows_b],
    )
    results = [measure_condition(CLEAN, 0.0, "", clean_probes, clean, subset, clean_scores, threshold)]
    profile = measure_profile_views(fold_pairs, row_of, clean, subset, clean_scores, threshold)
    if profile is not None:
        results.append(profile)

    images = bench.probe_images()
    notes: list[str] = []
    missing_landmarks = int((~clean_probes.has_face).sum())
    if missing_landmarks:
        notes.append(f"{missing_landmarks} clean probes without a face: occlusions cannot be placed on them")
    for number, (name, strength, unit) in enumerate(conditions or default_conditions(), start=1):
        condition_started = time.perf_counter()
        observed = observe_degraded(
            analyzer,
            images,
            subset.probe_paths,
            clean_probes,
            name,
            strength,
            seed=seed,
            cache_dir=cache_dir,
            cache_key=cache_key or analyzer.model_id,
        )
        result = measure_condition(name, strength, unit, observed, clean, subset, clean_scores, threshold)
        results.append(result)
        if progress is not None:
            progress(
                f"{number} {result.label}: accuracy {result.accuracy:.3f}, TAR {result.tar_at_fmr:.3f}, "
                f"failed {result.failure_to_detect:.3f}, {time.perf_counter() - condition_started:.0f} s"
            )

    degraded_rows = [row for row in results if row.condition not in (CLEAN, PROFILE)]
    clean_with_face = clean.has_face
    flag_counts: dict[str, int] = {}
    for row_flags, found in zip(clean.flags, clean_with_face, strict=True):
        if found:
            for flag in row_flags:
                flag_counts[flag] = flag_counts.get(flag, 0) + 1
    return RobustnessReport(
        model_id=analyzer.model_id,
        pairs_csv=pairs_csv,
        folds=tuple(sorted({pair.fold for pair in subset_pairs})),
        pairs=len(subset_pairs),
        threshold=round(threshold, 6),
        threshold_fmr=CALIBRATED_FMR,
        clean_photos=int(clean_with_face.sum()),
        clean_photos_flagged=float(np.mean(clean.flagged[clean_with_face])) if clean_with_face.any() else 0.0,
        clean_flag_counts=flag_counts,
        results=tuple(results),
        high_impostors=sum(row.high_impostors for row in degraded_rows),
        high_impostors_flagged=sum(row.high_impostors_flagged for row in degraded_rows),
        impostor_pairs=sum(row.impostor_pairs for row in degraded_rows),
        flagged_impostor_pairs=sum(row.flagged_impostor_pairs for row in degraded_rows),
        alike_high_impostors=sum(row.alike_high_impostors for row in degraded_rows),
        alike_high_impostors_flagged=sum(row.alike_high_impostors_flagged for row in degraded_rows),
        alike_impostor_pairs=sum(row.alike_impostor_pairs for row in degraded_rows),
        alike_flagged_impostor_pairs=sum(row.alike_flagged_impostor_pairs for row in degraded_rows),
        seconds=round(time.perf_counter() - started, 1),
        seed=seed,
        notes=tuple(notes),
    )
