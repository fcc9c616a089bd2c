"""Accuracy metrics for 1:1 verification and 1:N identification, on plain numpy score arrays.

Conventions (the same as the rest of facetrace):
- a higher score means "more likely the same person" (cosine similarity in [-1, 1]);
- a comparison is accepted as a match when score >= threshold;
- rates are fractions in [0, 1], never percentages.

Every function here is pure and deterministic so the unit tests can check it against hand-made scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ScoreArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# The rank of a mate that cannot be found (missing from the gallery, or a probe without a face): a miss at any rank,
# even ranks beyond the gallery size.
MISSED_RANK = int(np.iinfo(np.int64).max)
# Probe rows of the probe x gallery similarity matrix handled at once: a few tens of MB for LFW-sized galleries.
_PROBE_CHUNK_ROWS = 1024


@dataclass(frozen=True)
class KFoldAccuracy:
    """Verification accuracy under the LFW protocol: each fold is scored at the threshold fitted on the others."""

    mean: float
    std: float  # population standard deviation over folds (np.std), as the LFW literature reports it
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]


@dataclass(frozen=True)
class OperatingPoint:
    """True accept rate at a target false accept rate (1:1), with the threshold that achieves it.

    resolved is False when the target is finer than the data can measure (fewer than 1/target impostor pairs):
    the threshold then admits no impostor at all and the achieved FAR (0) says nothing about the target.
    """

    far_target: float
    threshold: float
    tar: float
    far: float
    impostor_pairs: int
    genuine_pairs: int
    resolved: bool

    @property
    def far_resolution(self) -> float:
        """The smallest nonzero FAR these impostor pairs can show (one false accept)."""
        return 1.0 / self.impostor_pairs if self.impostor_pairs else float("inf")


@dataclass(frozen=True)
class RocPoint:
    threshold: float
    far: float
    tar: float


@dataclass(frozen=True)
class OpenSetPoint:
    """Open-set identification at a target false positive identification rate (FPIR).

    The threshold is fitted on the non-mated probes (whose person is not in the gallery): FPIR is the share of them
    whose best gallery score reaches it. FNIR is the share of mated probes whose mate is not the rank-1 candidate
    at or above that threshold (the NIST FRVT definition with R = 1).
    """

    fpir_target: float
    threshold: float
    fnir: float
    fpir: float
    mated_probes: int
    nonmated_probes: int
    resolved: bool


def _as_scores(scores: npt.ArrayLike) -> ScoreArray:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("scores must be finite (score a failed comparison as -1, not NaN)")
    return array


def _as_labels(same: npt.ArrayLike, size: int) -> BoolArray:
    labels = np.asarray(same, dtype=np.bool_)
    if labels.shape != (size,):
        raise ValueError(f"labels must have shape ({size},) like the scores, got {labels.shape}")
    return labels


def best_threshold(scores: npt.ArrayLike, same: npt.ArrayLike) -> tuple[float, float]:
    """The threshold with the highest accuracy on these pairs, and that accuracy.

    Candidates are the midpoints between consecutive distinct scores (plus one below all and one above all), so a
    threshold never sits on a training score and generalises symmetrically. Ties go to the lowest threshold.
    """
    values = _as_scores(scores)
    labels = _as_labels(same, values.size)
    if values.size == 0:
        raise ValueError("cannot fit a threshold on zero pairs")
    order = np.argsort(values, kind="stable")
    sorted_scores = values[order]
    sorted_same = labels[order]
    # Threshold between position i-1 and i: pairs [0, i) are rejected, [i, n) accepted.
    # correct(i) = different pairs among the first i + same pairs from i on.
    different_below = np.concatenate(([0], np.cumsum(~sorted_same)))
    same_from = np.concatenate((np.cumsum(sorted_same[::-1])[::-1], [0]))
    correct = different_below + same_from
    # A cut is only possible where the score changes (cannot split tied scores), or at either end.
    cut_possible = np.ones(values.size + 1, dtype=np.bool_)
    cut_possible[1:-1] = sorted_scores[1:] > sorted_scores[:-1]
    correct = np.where(cut_possible, correct, -1)
    best = int(np.argmax(correct))
    if best == 0:
        threshold = float(sorted_scores[0])
    elif best == values.size:
        threshold = float(np.nextafter(sorted_scores[-1], np.inf))
    else:
        threshold = float((sorted_scores[best - 1] + sorted_scores[best]) / 2.0)
    return threshold, float(correct[best]) / values.size


def accuracy_at(scores: npt.ArrayLike, same: npt.ArrayLike, threshold: float) -> float:
    values = _as_scores(scores)
    labels = _as_labels(same, values.size)
    if values.size == 0:
        raise ValueError("cannot measure accuracy on zero pairs")
    return float(np.mean((values >= threshold) == labels))


def kfold_accuracy(scores: npt.ArrayLike, same: npt.ArrayLike, folds: npt.ArrayLike) -> KFoldAccuracy:
    """The LFW protocol: for each fold, fit the threshold on the other folds and score the held-out fold."""
    values = _as_scores(scores)
    labels = _as_labels(same, values.size)
    fold_ids = np.asarray(folds)
    if fold_ids.shape != values.shape:
        raise ValueError(f"folds must have shape {values.shape} like the scores, got {fold_ids.shape}")
    distinct = np.unique(fold_ids)
    if distinct.size < 2:
        raise ValueError(f"k-fold accuracy needs at least 2 folds, got {distinct.size}")
    accuracies: list[float] = []
    thresholds: list[float] = []
    for fold in distinct:
        held_out = fold_ids == fold
        threshold, _ = best_threshold(values[~held_out], labels[~held_out])
        thresholds.append(threshold)
        accuracies.append(accuracy_at(values[held_out], labels[held_out], threshold))
    return KFoldAccuracy(
        mean=float(np.mean(accuracies)),
        std=float(np.std(accuracies)),
        fold_accuracies=tuple(accuracies),
        fold_thresholds=tuple(thresholds),
    )


def threshold_for_false_rate(negative_scores: npt.ArrayLike, rate: float) -> tuple[float, bool]:
    """The lowest threshold at which at most `rate` of these negative scores are accepted (score >= threshold).

    Returns (threshold, resolved); resolved is False when rate < 1/len(negatives), i.e. the data cannot tell
    that rate from zero, and the threshold is then just above the highest negative score.
    """
    negatives = _as_scores(negative_scores)
    if negatives.size == 0:
        raise ValueError("cannot set a false-accept threshold without negative scores")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    allowed = int(np.floor(rate * negatives.size + 1e-9))  # epsilon: 0.001 * 3000 must allow 3, not 2
    resolved = allowed >= 1 or rate == 0.0
    if allowed >= negatives.size:
        return float(np.min(negatives)), resolved
    descending = np.sort(negatives)[::-1]
    # Accept everything strictly above the (allowed+1)-th highest negative: at most `allowed` negatives pass,
    # ties included, and no genuine score is rejected needlessly.
    return float(np.nextafter(descending[allowed], np.inf)), resolved


def tar_at_far(scores: npt.ArrayLike, same: npt.ArrayLike, far_target: float) -> OperatingPoint:
    values = _as_scores(scores)
    labels = _as_labels(same, values.size)
    genuine = values[labels]
    impostor = values[~labels]
    if genuine.size == 0:
        raise ValueError("TAR needs at least one genuine (same-person) pair")
    threshold, resolved = threshold_for_false_rate(impostor, far_target)
    return OperatingPoint(
        far_target=far_target,
        threshold=threshold,
        tar=float(np.mean(genuine >= threshold)),
        far=float(np.mean(impostor >= threshold)),
        impostor_pairs=int(impostor.size),
        genuine_pairs=int(genuine.size),
        resolved=resolved,
    )


def roc_curve(scores: npt.ArrayLike, same: npt.ArrayLike) -> tuple[RocPoint, ...]:
    """Every distinct operating point, from the strictest threshold (FAR 0) to accepting everything (FAR 1)."""
    values = _as_scores(scores)
    labels = _as_labels(same, values.size)
    genuine_total = int(np.count_nonzero(labels))
    impostor_total = values.size - genuine_total
    if genuine_total == 0 or impostor_total == 0:
        raise ValueError("a ROC curve needs both genuine and impostor pairs")
    order = np.argsort(-values, kind="stable")
    descending = values[order]
    accepted_genuine = np.cumsum(labels[order])
    accepted_impostor = np.cumsum(~labels[order])
    # One point per distinct score: the last index of each run of tied scores.
    last_of_run = np.ones(values.size, dtype=np.bool_)
    last_of_run[:-1] = descending[:-1] > descending[1:]
    points = [RocPoint(threshold=float(np.nextafter(descending[0], np.inf)), far=0.0, tar=0.0)]
    for index in np.flatnonzero(last_of_run):
        points.append(
            RocPoint(
                threshold=float(descending[index]),
                far=float(accepted_impostor[index]) / impostor_total,
                tar=float(accepted_genuine[index]) / genuine_total,
            )
        )
    return tuple(points)


def roc_at_fars(scores: npt.ArrayLike, same: npt.ArrayLike, far_targets: Sequence[float]) -> tuple[OperatingPoint, ...]:
    """A compact ROC for reports: the operating point at each target FAR."""
    return tuple(tar_at_far(scores, same, far) for far in far_targets)


def mate_ranks(similarities: npt.ArrayLike, mate_columns: npt.ArrayLike) -> IntArray:
    """The 1-based rank of each probe's mate in its row of a probe x gallery similarity matrix.

    mate_columns[i] is the gallery column holding probe i's mate, or -1 when the mate is missing (e.g. its gallery
    photo had no detectable face): such a probe gets MISSED_RANK, so it counts as a miss at every rank.
    Ties count against the probe (a non-mate scoring exactly the mate's score ranks ahead of it).
    """
    scores = np.asarray(similarities, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"similarities must be a probes x gallery matrix, got shape {scores.shape}")
    mates = np.asarray(mate_columns, dtype=np.int64)
    if mates.shape != (scores.shape[0],):
        raise ValueError(f"mate_columns must have shape ({scores.shape[0]},), got {mates.shape}")
    if np.any(mates >= scores.shape[1]) or np.any(mates < -1):
        raise ValueError("mate_columns must index a gallery column, or be -1 for a missing mate")
    ranks = np.full(mates.shape, MISSED_RANK, dtype=np.int64)
    present = np.flatnonzero(mates >= 0)
    mate_scores = scores[present, mates[present]]
    at_or_above = np.count_nonzero(scores[present] >= mate_scores[:, None], axis=1)
    ranks[present] = at_or_above  # includes the mate itself, so this is already 1-based
    return ranks


def cmc(ranks: npt.ArrayLike, max_rank: int) -> tuple[float, ...]:
    """Cumulative match characteristic: the identification rate at ranks 1..max_rank."""
    values = np.asarray(ranks, dtype=np.int64)
    if values.size == 0:
        raise ValueError("a CMC needs at least one mated probe")
    return tuple(float(np.mean(values <= rank)) for rank in range(1, max_rank + 1))


def identification_rate(ranks: npt.ArrayLike, rank: int) -> float:
    """Share of mated probes whose mate is within the top `rank` candidates (closed set)."""
    return cmc(ranks, rank)[rank - 1]


def fnir_at_fpir(
    mated_mate_scores: npt.ArrayLike,
    mated_mate_ranks: npt.ArrayLike,
    nonmated_top_scores: npt.ArrayLike,
    fpir_target: float,
) -> OpenSetPoint:
    """Open-set FNIR at a target FPIR, the threshold being set on the non-mated probes' best scores.

    mated_mate_scores / mated_mate_ranks: each mated probe's score against its mate and that mate's rank (a missing
    mate has MISSED_RANK and any score). nonmated_top_scores: each non-mated probe's best gallery score
    (-1 for a probe without a detectable face, which then raises no false alarm).
    """
    mate_scores = _as_scores(mated_mate_scores)
    ranks = np.asarray(mated_mate_ranks, dtype=np.int64)
    if ranks.shape != mate_scores.shape:
        raise ValueError("mated_mate_ranks must have the shape of mated_mate_scores")
    if mate_scores.size == 0:
        raise ValueError("FNIR needs at least one mated probe")
    nonmated = _as_scores(nonmated_top_scores)
    threshold, resolved = threshold_for_false_rate(nonmated, fpir_target)
    found = (ranks == 1) & (mate_scores >= threshold)
    return OpenSetPoint(
        fpir_target=fpir_target,
        threshold=threshold,
        fnir=float(1.0 - np.mean(found)),
        fpir=float(np.mean(nonmated >= threshold)),
        mated_probes=int(mate_scores.size),
        nonmated_probes=int(nonmated.size),
        resolved=resolved,
    )


def top_scores_and_ranks(
    probes: npt.ArrayLike, gallery: npt.ArrayLike, mate_columns: npt.ArrayLike
) -> tuple[ScoreArray, ScoreArray, IntArray]:
    """Exact search of L2-normalised probes against a gallery, in row chunks.

    Returns (best_scores, mate_scores, mate_ranks) per probe; for a probe without a mate (mate column -1) the mate
    score is -1 and the rank is MISSED_RANK.
    """
    probe_vectors = np.asarray(probes, dtype=np.float32)
    gallery_vectors = np.asarray(gallery, dtype=np.float32)
    mates = np.asarray(mate_columns, dtype=np.int64)
    if probe_vectors.ndim != 2 or gallery_vectors.ndim != 2 or probe_vectors.shape[1] != gallery_vectors.shape[1]:
        raise ValueError(
            f"probes {probe_vectors.shape} and gallery {gallery_vectors.shape} must be 2-D with the same width"
        )
    if gallery_vectors.shape[0] == 0:
        raise ValueError("the gallery is empty")
    best = np.empty(probe_vectors.shape[0], dtype=np.float64)
    mate_scores = np.full(probe_vectors.shape[0], -1.0, dtype=np.float64)
    ranks = np.empty(probe_vectors.shape[0], dtype=np.int64)
    for start in range(0, probe_vectors.shape[0], _PROBE_CHUNK_ROWS):
        stop = min(start + _PROBE_CHUNK_ROWS, probe_vectors.shape[0])
        block = (probe_vectors[start:stop] @ gallery_vectors.T).astype(np.float64)
        best[start:stop] = block.max(axis=1)
        chunk_mates = mates[start:stop]
        ranks[start:stop] = mate_ranks(block, chunk_mates)
        present = np.flatnonzero(chunk_mates >= 0)
        mate_scores[start + present] = block[present, chunk_mates[present]]
    return best, mate_scores, ranks
