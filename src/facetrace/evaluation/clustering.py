"""How well a clustering matches known identities: pairwise precision/recall and BCubed F1."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.core.errors import InvalidRequestError
from facetrace.engine import ClusteredFaces


@dataclass(frozen=True)
class ClusteringReport:
    faces: int
    clusters: int
    identities: int
    pairwise_precision: float  # of the pairs put together, the share that are the same person
    pairwise_recall: float  # of the same-person pairs, the share put together
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    merges: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _pairs(counts: npt.NDArray[np.int64]) -> int:
    return int((counts * (counts - 1) // 2).sum())


def score_clustering(
    predicted: Sequence[int] | npt.NDArray[np.int64], truth: Sequence[str], merges: int = 0
) -> ClusteringReport:
    """Compare predicted cluster labels with true identities (same length, one entry per face)."""
    pred = np.asarray(predicted)
    if pred.shape[0] != len(truth):
        raise ValueError(f"{pred.shape[0]} predicted labels for {len(truth)} identities")
    _, true_ids = np.unique(np.asarray(truth), return_inverse=True)
    _, pred_ids = np.unique(pred, return_inverse=True)
    # Contingency counts of (predicted cluster, true identity) cells.
    cells = pred_ids.astype(np.int64) * (int(true_ids.max()) + 1) + true_ids
    _, cell_counts = np.unique(cells, return_counts=True)
    pred_sizes = np.bincount(pred_ids).astype(np.int64)
    true_sizes = np.bincount(true_ids).astype(np.int64)
    together_same = _pairs(cell_counts.astype(np.int64))
    together = _pairs(pred_sizes)
    same = _pairs(true_sizes)
    # BCubed: for each face, precision = share of its cluster with its identity; recall = share of its identity in
    # its cluster. Per cell of size c: c faces each with c / cluster_size and c / identity_size.
    cell_pred = np.unique(cells) // (int(true_ids.max()) + 1)
    cell_true = np.unique(cells) % (int(true_ids.max()) + 1)
    n = float(pred.shape[0])
    b_precision = float((cell_counts**2 / pred_sizes[cell_pred]).sum() / n)
    b_recall = float((cell_counts**2 / true_sizes[cell_true]).sum() / n)
    return ClusteringReport(
        faces=int(n),
        clusters=int(pred_sizes.size),
        identities=int(true_sizes.size),
        pairwise_precision=together_same / together if together else 1.0,
        pairwise_recall=together_same / same if same else 1.0,
        bcubed_precision=b_precision,
        bcubed_recall=b_recall,
        bcubed_f1=2 * b_precision * b_recall / (b_precision + b_recall) if b_precision + b_recall else 0.0,
        merges=merges,
    )


def identities_by_path(manifest: Path) -> dict[str, str]:
    """A CSV path,identity (paths relative to the CSV) as {resolved path: identity}."""
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.DictReader(handle)
        if not rows.fieldnames or not {"path", "identity"} <= set(rows.fieldnames):
            raise InvalidRequestError(f"{manifest}: the header must name the columns path and identity")
        return {str((manifest.parent / row["path"]).resolve()): row["identity"] for row in rows}


def score_against_manifest(clustered: ClusteredFaces, manifest: Path) -> ClusteringReport:
    """Score the clustering of each image's largest face (taken as the one the CSV's identity names: a benchmark's
    scoring convention, unlike ingest's subject rule in core/subject.py) against a CSV path,identity; images the CSV
    does not name are left out."""
    truth = identities_by_path(manifest)
    scored = [
        (position, truth[str(Path(face.source).resolve())])
        for position, face in enumerate(clustered.faces)
        if face.main_face and str(Path(face.source).resolve()) in truth
    ]
    if not scored:
        raise InvalidRequestError(f"{manifest}: none of its paths matches a clustered image")
    positions, identities = zip(*scored, strict=True)
    result = clustered.clustering
    return score_clustering(result.labels[list(positions)], list(identities), len(result.merges))
