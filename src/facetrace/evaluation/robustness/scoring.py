"""Every figure of one condition of the robustness benchmark, from the observations of its probes and the clean
photos: accuracy at the clean thresholds, TAR at the calibrated threshold, rank-1, and the impostors at or above it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from facetrace.core.types import FloatArray
from facetrace.evaluation import metrics
from facetrace.evaluation.datasets import VerificationPair
from facetrace.evaluation.robustness.observations import Observations
from facetrace.evaluation.robustness.protocol import PROFILE, PROFILE_MIN_YAW_DEG, Subset
from facetrace.evaluation.robustness.report import ConditionResult

FAILED_SCORE = -1.0


def pair_scores(
    vectors_a: FloatArray, found_a: npt.NDArray[np.bool_], vectors_b: FloatArray, found_b: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    cosine = np.einsum("ij,ij->i", vectors_a, vectors_b).astype(np.float64)
    return np.where(found_a & found_b, np.clip(cosine, -1.0, 1.0), FAILED_SCORE)


def _accuracy_at_clean_thresholds(
    scores: npt.NDArray[np.float64],
    clean_scores: npt.NDArray[np.float64],
    same: npt.NDArray[np.bool_],
    folds: npt.NDArray[np.int64],
) -> float:
    """Mean over folds of the accuracy at the threshold fitted on the other folds' clean scores."""
    accuracies = []
    for fold in np.unique(folds):
        held_out = folds == fold
        if held_out.all():
            threshold, _ = metrics.best_threshold(clean_scores, same)
        else:
            threshold, _ = metrics.best_threshold(clean_scores[~held_out], same[~held_out])
        accuracies.append(metrics.accuracy_at(scores[held_out], same[held_out], threshold))
    return float(np.mean(accuracies))


def measure_condition(
    condition: str,
    strength: float,
    unit: str,
    probes: Observations,
    clean: Observations,
    subset: Subset,
    clean_scores: npt.NDArray[np.float64],
    threshold: float,
) -> ConditionResult:
    """Every figure of one condition, given the observations of its (degraded) probes."""
    pair_vectors_b = probes.vectors[subset.pair_probe]
    pair_found_b = probes.has_face[subset.pair_probe]
    scores = pair_scores(clean.vectors[subset.rows_a], clean.has_face[subset.rows_a], pair_vectors_b, pair_found_b)
    accuracy = _accuracy_at_clean_thresholds(scores, clean_scores, subset.same, subset.folds)
    genuine = scores[subset.same]
    tar = float(np.mean(genuine >= threshold)) if genuine.size else 0.0

    gallery_found = clean.has_face[subset.gallery_rows]
    gallery_vectors = clean.vectors[subset.gallery_rows]
    gallery_flagged = clean.flagged[subset.gallery_rows]
    similarity = probes.vectors @ gallery_vectors.T  # (probes, gallery)
    valid = probes.has_face[:, None] & gallery_found[None, :]
    other_person = subset.probe_identities[:, None] != subset.gallery_identities[None, :]
    impostor = valid & other_person
    high = impostor & (similarity >= threshold)
    flagged_pair = probes.flagged[:, None] | gallery_flagged[None, :]

    # Rank-1 of same-person probes: the best clean photo other than the probe's own clean copy.
    own = subset.probe_rows[:, None] == subset.gallery_rows[None, :]
    searchable = np.where(valid & ~own, similarity, -np.inf)
    mated = np.array(
        [bool(np.any(subset.same[subset.pair_probe == index])) for index in range(len(subset.probe_paths))],
        dtype=np.bool_,
    )
    has_mate = mated & np.any(~other_person & ~own & gallery_found[None, :], axis=1)
    best = np.argmax(searchable, axis=1)
    hit = probes.has_face & (subset.gallery_identities[best] == subset.probe_identities)
    rank1 = float(np.mean(hit[has_mate])) if has_mate.any() else None

    alike = probes.vectors @ probes.vectors.T
    upper = np.triu(np.ones(alike.shape, dtype=np.bool_), k=1)
    alike_impostor = (
        upper
        & probes.has_face[:, None]
        & probes.has_face[None, :]
        & (subset.probe_identities[:, None] != subset.probe_identities[None, :])
    )
    alike_high = alike_impostor & (alike >= threshold)
    alike_flagged = probes.flagged[:, None] | probes.flagged[None, :]

    with_face = probes.has_face
    return ConditionResult(
        condition=condition,
        strength=strength,
        unit=unit,
        pairs=len(scores),
        accuracy=accuracy,
        tar_at_fmr=tar,
        failure_to_detect=float(np.mean(~with_face)),
        probes_flagged=float(np.mean(probes.flagged[with_face])) if with_face.any() else 0.0,
        rank1=rank1,
        impostor_pairs=int(impostor.sum()),
        impostor_fmr=float(high.sum() / max(1, int(impostor.sum()))),
        high_impostors=int(high.sum()),
        high_impostors_flagged=int((high & flagged_pair).sum()),
        flagged_impostor_pairs=int((impostor & flagged_pair).sum()),
        alike_impostor_pairs=int(alike_impostor.sum()),
        alike_high_impostors=int(alike_high.sum()),
        alike_high_impostors_flagged=int((alike_high & alike_flagged).sum()),
        alike_flagged_impostor_pairs=int((alike_impostor & alike_flagged).sum()),
    )


def measure_profile_views(
    all_pairs: Sequence[VerificationPair],
    row_of: dict[str, int],
    clean: Observations,
    subset: Subset,
    clean_scores: npt.NDArray[np.float64],
    threshold: float,
) -> ConditionResult | None:
    """Clean pairs of the chosen folds in which one face is turned at least PROFILE_MIN_YAW_DEG."""
    rows_a = np.array([row_of[pair.path_a] for pair in all_pairs], dtype=np.int64)
    rows_b = np.array([row_of[pair.path_b] for pair in all_pairs], dtype=np.int64)
    turned = (np.abs(clean.yaw[rows_a]) >= PROFILE_MIN_YAW_DEG) | (np.abs(clean.yaw[rows_b]) >= PROFILE_MIN_YAW_DEG)
    if not turned.any():
        return None
    same = np.array([pair.same for pair in all_pairs], dtype=np.bool_)
    folds = np.array([pair.fold for pair in all_pairs], dtype=np.int64)
    scores = pair_scores(clean.vectors[rows_a], clean.has_face[rows_a], clean.vectors[rows_b], clean.has_face[rows_b])
    # Thresholds fitted on the benchmark subset's clean pairs of the other folds, as for every other condition.
    accuracies = []
    for fold in np.unique(folds[turned]):
        others = subset.folds != fold
        reference = others if others.any() else np.ones_like(others)
        fold_threshold, _ = metrics.best_threshold(clean_scores[reference], subset.same[reference])
        chosen = turned & (folds == fold)
        accuracies.append((metrics.accuracy_at(scores[chosen], same[chosen], fold_threshold), int(chosen.sum())))
    accuracy = sum(acc * count for acc, count in accuracies) / sum(count for _, count in accuracies)
    genuine = scores[turned & same]
    impostor = scores[turned & ~same]
    high = impostor >= threshold
    flagged = clean.flagged[rows_a] | clean.flagged[rows_b]
    turned_rows = np.unique(np.concatenate([rows_a[turned], rows_b[turned]]))
    return ConditionResult(
        condition=PROFILE,
        strength=PROFILE_MIN_YAW_DEG,
        unit="|yaw| deg",
        pairs=int(turned.sum()),
        accuracy=float(accuracy),
        tar_at_fmr=float(np.mean(genuine >= threshold)) if genuine.size else 0.0,
        failure_to_detect=float(np.mean(~clean.has_face[turned_rows])),
        probes_flagged=float(np.mean(clean.flagged[turned_rows][clean.has_face[turned_rows]]))
        if clean.has_face[turned_rows].any()
        else 0.0,
        rank1=None,
        impostor_pairs=int(impostor.size),
        impostor_fmr=float(high.mean()) if impostor.size else 0.0,
        high_impostors=int(high.sum()),
        high_impostors_flagged=int((high & flagged[turned & ~same]).sum()),
        flagged_impostor_pairs=int(flagged[turned & ~same].sum()),
    )
