"""1:1 verification accuracy on a pairs protocol (LFW's 10 folds by default)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.core.errors import ModelMismatchError
from facetrace.core.ports import FaceAnalyzer
from facetrace.core.types import ScoreCalibration
from facetrace.evaluation import metrics
from facetrace.evaluation.datasets import VerificationPair, require_files
from facetrace.evaluation.embeddings import ProgressCallback, embed_images

logger = logging.getLogger(__name__)

# The score given to a pair where either image has no detectable face: the lowest cosine similarity, so a same-person
# pair counts as a miss and the failure cannot flatter the headline figure.
FAILED_PAIR_SCORE = -1.0
DEFAULT_FAR_TARGETS = (1e-3, 1e-4)
# ROC points reported (a compact curve: the full one has a point per distinct score).
ROC_FAR_TARGETS = (1e-4, 1e-3, 1e-2, 1e-1)
# The turned-faces subset: pairs in which either photo's subject face has at least this yaw, as the quality module
# estimates it from the detector's points (so the subset is the same whichever points align the faces). On LFW's
# pairs it takes 2,082 of the 6,000 (1,475 of the 7,701 photos; the median |yaw| is 16 degrees, 275 photos exceed 45).
TURNED_YAW_DEG = 30.0
TURNED_FAR_TARGET = 1e-3


@dataclass(frozen=True)
class TurnedSubset:
    """The protocol's verdicts on the pairs with a turned face (|yaw| >= yaw_deg in either photo).

    accuracy: each pair judged at its fold's threshold, as the 10-fold protocol judged it; tar: the share of its
    genuine pairs at or above the threshold for FAR far_target over all the protocol's impostor pairs, and how many
    of its impostor pairs that threshold accepts."""

    yaw_deg: float
    pairs: int
    same_pairs: int
    accuracy: float
    far_target: float
    threshold: float
    tar: float
    impostors_accepted: int


@dataclass(frozen=True)
class VerificationReport:
    """What evaluate_verification measured. Rates are fractions; accuracy_std is over folds."""

    model_id: str
    pairs: int
    same_pairs: int
    different_pairs: int
    folds: int
    images: int
    images_without_face: int
    unreadable_images: int
    pairs_with_failure: int
    accuracy: float
    accuracy_std: float
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]
    # The same protocol over only the pairs where both faces were found (None when no pair failed or too few remain).
    accuracy_excluding_failures: float | None
    accuracy_std_excluding_failures: float | None
    tar_at_far: tuple[metrics.OperatingPoint, ...]
    roc: tuple[metrics.OperatingPoint, ...]
    failed_images: tuple[str, ...]
    embed_seconds: float
    notes: tuple[str, ...]
    # TAR on the genuine pairs at thresholds read from an impostor calibration (millions of impostor pairs), which
    # resolves FARs the protocol's 3,000 impostor pairs cannot. Empty without a calibration.
    calibrated_tar_at_far: tuple[metrics.OperatingPoint, ...] = ()
    calibration_measured_on: str = ""
    turned: TurnedSubset | None = None  # None when no pair has a turned face

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for point in data["tar_at_far"] + data["roc"] + data["calibrated_tar_at_far"]:
            point["far_resolution"] = 1.0 / point["impostor_pairs"] if point["impostor_pairs"] else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        """A few lines a person reads on a terminal."""
        lines = [
            f"model {self.model_id}: {self.pairs} pairs ({self.same_pairs} same, {self.different_pairs} different), "
            f"{self.folds} folds, {self.images} images",
            f"accuracy {self.accuracy * 100:.2f}% ± {self.accuracy_std * 100:.2f}% (mean ± std over folds)",
        ]
        if self.accuracy_excluding_failures is not None and self.accuracy_std_excluding_failures is not None:
            lines.append(
                f"accuracy excluding {self.pairs_with_failure} pairs with a detection failure: "
                f"{self.accuracy_excluding_failures * 100:.2f}% ± {self.accuracy_std_excluding_failures * 100:.2f}%"
            )
        lines.append(
            f"images without a detected face: {self.images_without_face} (unreadable: {self.unreadable_images})"
        )
        for point in self.tar_at_far:
            flag = "" if point.resolved else " (below resolution: see notes)"
            lines.append(
                f"TAR@FAR={point.far_target:g}: {point.tar * 100:.2f}% at threshold {point.threshold:.4f} "
                f"(achieved FAR {point.far:.2e}){flag}"
            )
        for point in self.calibrated_tar_at_far:
            flag = "" if point.resolved else " (below the calibration's resolution)"
            lines.append(
                f"TAR@FAR={point.far_target:g} at the calibrated threshold {point.threshold:.4f} "
                f"(FMR {point.far:.2e} over {point.impostor_pairs:,} impostor pairs): {point.tar * 100:.2f}%{flag}"
            )
        turned = self.turned
        if turned is not None:
            lines.append(
                f"turned faces (|yaw| >= {turned.yaw_deg:g} deg in either photo): {turned.pairs} pairs "
                f"({turned.same_pairs} same), accuracy {turned.accuracy * 100:.2f}% at the folds' thresholds, "
                f"TAR {turned.tar * 100:.2f}% at the FAR={turned.far_target:g} threshold {turned.threshold:.4f} "
                f"({turned.impostors_accepted} of their {turned.pairs - turned.same_pairs} impostor pairs accepted)"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def evaluate_verification(
    analyzer: FaceAnalyzer,
    pairs: Sequence[VerificationPair],
    root: Path | str,
    *,
    progress: ProgressCallback | None = None,
    cache_dir: Path | str | None = None,
    cache_key: str | None = None,
    far_targets: Sequence[float] = DEFAULT_FAR_TARGETS,
    calibration: ScoreCalibration | None = None,
) -> VerificationReport:
    """Embed each distinct image once, score every pair by cosine similarity, and apply the k-fold protocol.

    A pair with an image where no face is found scores FAILED_PAIR_SCORE (it counts against a same-person pair);
    the report also gives the accuracy over only the pairs where both faces were found. With an impostor
    calibration of the same model, TAR is also reported at the thresholds the calibration sets for far_targets.
    """
    if calibration is not None and calibration.model_id != analyzer.model_id:
        raise ModelMismatchError(calibration.model_id, analyzer.model_id, "the impostor calibration")
    if not pairs:
        raise ValueError("no pairs to evaluate")
    all_paths = [path for pair in pairs for path in (pair.path_a, pair.path_b)]
    require_files(all_paths, root)
    embedded = embed_images(analyzer, root, all_paths, cache_dir=cache_dir, cache_key=cache_key, progress=progress)
    rows_a = np.array([embedded.row_of[pair.path_a] for pair in pairs], dtype=np.int64)
    rows_b = np.array([embedded.row_of[pair.path_b] for pair in pairs], dtype=np.int64)
    both_found = embedded.has_face[rows_a] & embedded.has_face[rows_b]
    cosine = np.einsum("ij,ij->i", embedded.vectors[rows_a], embedded.vectors[rows_b]).astype(np.float64)
    scores = np.where(both_found, np.clip(cosine, -1.0, 1.0), FAILED_PAIR_SCORE)
    same = np.array([pair.same for pair in pairs], dtype=np.bool_)
    folds = np.array([pair.fold for pair in pairs], dtype=np.int64)

    kfold = metrics.kfold_accuracy(scores, same, folds)
    excluding_mean: float | None = None
    excluding_std: float | None = None
    if not both_found.all() and np.unique(folds[both_found]).size >= 2:
        excluding = metrics.kfold_accuracy(scores[both_found], same[both_found], folds[both_found])
        excluding_mean, excluding_std = excluding.mean, excluding.std
    operating_points = metrics.roc_at_fars(scores, same, far_targets)
    notes: list[str] = []
    for point in operating_points:
        if not point.resolved:
            notes.append(
                f"FAR {point.far_target:g} is below the resolution of {point.impostor_pairs} impostor pairs "
                f"(one false accept = FAR {point.far_resolution:.1e}): its TAR is measured just above the highest "
                "impostor score, and the true threshold for that FAR is probably higher, so it is probably optimistic"
            )
    if not both_found.all():
        notes.append(f"{int((~both_found).sum())} pairs with an image without a face scored {FAILED_PAIR_SCORE}")
    report = VerificationReport(
        model_id=embedded.model_id,
        pairs=len(pairs),
        same_pairs=int(same.sum()),
        different_pairs=int((~same).sum()),
        folds=len(kfold.fold_accuracies),
        images=len(embedded.paths),
        images_without_face=int((~embedded.has_face).sum()),
        unreadable_images=len(embedded.errors),
        pairs_with_failure=int((~both_found).sum()),
        accuracy=kfold.mean,
        accuracy_std=kfold.std,
        fold_accuracies=kfold.fold_accuracies,
        fold_thresholds=kfold.fold_thresholds,
        accuracy_excluding_failures=excluding_mean,
        accuracy_std_excluding_failures=excluding_std,
        tar_at_far=operating_points,
        roc=metrics.roc_at_fars(scores, same, ROC_FAR_TARGETS),
        failed_images=embedded.without_face,
        embed_seconds=embedded.embed_seconds,
        notes=tuple(notes),
        calibrated_tar_at_far=(
            tuple(calibrated_operating_point(scores[same], calibration, far) for far in far_targets)
            if calibration is not None
            else ()
        ),
        calibration_measured_on=calibration.measured_on if calibration is not None else "",
        turned=turned_subset(scores, same, folds, kfold, embedded.yaw_deg[rows_a], embedded.yaw_deg[rows_b]),
    )
    logger.info("verification: accuracy %.4f ± %.4f over %d pairs", report.accuracy, report.accuracy_std, report.pairs)
    return report


def turned_subset(
    scores: npt.NDArray[np.float64],
    same: npt.NDArray[np.bool_],
    folds: npt.NDArray[np.int64],
    kfold: metrics.KFoldAccuracy,
    yaw_a: npt.NDArray[np.float32],
    yaw_b: npt.NDArray[np.float32],
    yaw_deg: float = TURNED_YAW_DEG,
) -> TurnedSubset | None:
    """The protocol's verdicts on the pairs where either face is turned at least yaw_deg either way (NaN: no face)."""
    turned = (np.abs(np.nan_to_num(yaw_a)) >= yaw_deg) | (np.abs(np.nan_to_num(yaw_b)) >= yaw_deg)
    if not turned.any():
        return None
    threshold_of_fold = dict(zip(np.unique(folds).tolist(), kfold.fold_thresholds, strict=True))
    thresholds = np.array([threshold_of_fold[fold] for fold in folds[turned].tolist()])
    overall = metrics.tar_at_far(scores, same, TURNED_FAR_TARGET)
    genuine = scores[turned & same]
    return TurnedSubset(
        yaw_deg=yaw_deg,
        pairs=int(turned.sum()),
        same_pairs=int(genuine.size),
        accuracy=float(np.mean((scores[turned] >= thresholds) == same[turned])),
        far_target=TURNED_FAR_TARGET,
        threshold=overall.threshold,
        tar=float(np.mean(genuine >= overall.threshold)) if genuine.size else float("nan"),
        impostors_accepted=int(np.sum(scores[turned & ~same] >= overall.threshold)),
    )


def calibrated_operating_point(
    genuine_scores: npt.ArrayLike, calibration: ScoreCalibration, far_target: float
) -> metrics.OperatingPoint:
    """TAR of these genuine scores at the lowest calibrated similarity whose FMR is at most far_target.

    resolved is False when the calibration has no entry that low (the target is below its smallest measured FMR);
    the threshold is then the table's top and its FMR exceeds the target.
    """
    genuine = np.asarray(genuine_scores, dtype=np.float64)
    if genuine.size == 0:
        raise ValueError("TAR needs at least one genuine (same-person) pair")
    for similarity, rate in zip(calibration.similarities, calibration.false_match_rates, strict=True):
        if rate <= far_target:
            threshold, far, resolved = similarity, rate, True
            break
    else:
        threshold, far, resolved = calibration.similarities[-1], calibration.false_match_rates[-1], False
    return metrics.OperatingPoint(
        far_target=far_target,
        threshold=threshold,
        tar=float(np.mean(genuine >= threshold)),
        far=far,
        impostor_pairs=calibration.impostor_pairs,
        genuine_pairs=int(genuine.size),
        resolved=resolved,
    )
