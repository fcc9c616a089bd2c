"""Fit a model's impostor score distribution (similarity -> false-match rate) on a labelled public dataset.

Every cross-identity pair of the dataset's embeddings is scored (about 87 million pairs for LFW's 13,233 photos),
chunk by chunk with matrix products, and the scores are histogrammed into fine bins; FMR(s) is then the share of
impostor pairs scoring >= s. The search layer reads the resulting table to turn a similarity into evidence.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.core.types import QUALITY_CONDITIONS, ScoreCalibration

logger = logging.getLogger(__name__)

DEFAULT_BIN_WIDTH = 0.001
# Rows of the pair matrix per chunk: 1024 x 13,233 float32 scores plus their bin indices stay under ~200 MB.
_CHUNK_ROWS = 1024
_SIMILARITY_DECIMALS = 6


def impostor_histogram(
    embeddings: npt.ArrayLike, identities: Sequence[str], *, bin_width: float = DEFAULT_BIN_WIDTH
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Counts of cross-identity pair scores in bins [edge_k, edge_k + bin_width) over [-1, 1].

    Returns (counts, lower_edges); each unordered pair is counted once. Scores are clipped into [-1, 1] first
    (float32 dot products of unit vectors can overshoot by an ulp).
    """
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array, got shape {vectors.shape}")
    if len(identities) != vectors.shape[0]:
        raise ValueError(f"{len(identities)} identities for {vectors.shape[0]} embeddings")
    if not 0.0 < bin_width <= 0.1:
        raise ValueError(f"bin_width must be in (0, 0.1], got {bin_width}")
    bins = round(2.0 / bin_width)
    _, labels = np.unique(np.asarray(identities, dtype=object), return_inverse=True)
    labels = labels.astype(np.int64).reshape(-1)
    counts = np.zeros(bins, dtype=np.int64)
    count = vectors.shape[0]
    for start in range(0, count, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, count)
        # Only columns from `start` on: pairs with an earlier row were counted in an earlier chunk.
        scores = vectors[start:stop] @ vectors[start:].T
        row_ids = np.arange(start, stop)[:, None]
        column_ids = np.arange(start, count)[None, :]
        impostor = (column_ids > row_ids) & (labels[start:stop, None] != labels[None, start:])
        selected = np.clip(scores[impostor].astype(np.float64), -1.0, 1.0)
        indices = np.minimum(np.floor((selected + 1.0) / bin_width).astype(np.int64), bins - 1)
        counts += np.bincount(indices, minlength=bins)
    edges = np.round(-1.0 + bin_width * np.arange(bins), _SIMILARITY_DECIMALS)
    return counts, edges


def calibration_from_histogram(
    counts: npt.ArrayLike, lower_edges: npt.ArrayLike, *, model_id: str, measured_on: str
) -> ScoreCalibration:
    """The FMR table: at each bin edge s, the share of impostor pairs scoring >= s.

    The table starts at the highest edge where FMR is still 1 and stops at the smallest nonzero FMR: above the
    highest impostor score the data says only "below 1 / impostor_pairs", which the reader must not round to zero.
    """
    histogram = np.asarray(counts, dtype=np.int64)
    edges = np.asarray(lower_edges, dtype=np.float64)
    if histogram.shape != edges.shape or histogram.ndim != 1:
        raise ValueError("counts and lower_edges must be 1-D arrays of the same length")
    total = int(histogram.sum())
    if total == 0:
        raise ValueError("no impostor pairs: a calibration needs at least two identities")
    at_or_above = np.cumsum(histogram[::-1])[::-1]  # pairs scoring >= edge k
    false_match_rates = at_or_above / total
    nonzero_bins = np.flatnonzero(histogram)
    first = int(nonzero_bins[0])  # FMR is exactly 1 at and below this edge
    last = int(nonzero_bins[-1])  # the smallest nonzero FMR
    return ScoreCalibration(
        model_id=model_id,
        similarities=tuple(float(value) for value in edges[first : last + 1]),
        false_match_rates=tuple(float(value) for value in false_match_rates[first : last + 1]),
        impostor_pairs=total,
        measured_on=measured_on,
    )


def fit_impostor_calibration(
    embeddings: npt.ArrayLike,
    identities: Sequence[str],
    model_id: str,
    *,
    measured_on: str = "",
    bin_width: float = DEFAULT_BIN_WIDTH,
) -> ScoreCalibration:
    """Score every cross-identity pair of these L2-normalised embeddings and tabulate FMR(s)."""
    counts, edges = impostor_histogram(embeddings, identities, bin_width=bin_width)
    vectors = np.asarray(embeddings)
    description = measured_on or f"{vectors.shape[0]} images of {len(set(identities))} identities"
    calibration = calibration_from_histogram(counts, edges, model_id=model_id, measured_on=description)
    logger.info(
        "calibration of %s: %d impostor pairs, FMR 1e-3 near similarity %.3f",
        model_id,
        calibration.impostor_pairs,
        similarity_at_false_match_rate(calibration, 1e-3),
    )
    return calibration


def similarity_at_false_match_rate(calibration: ScoreCalibration, false_match_rate: float) -> float:
    """The lowest tabulated similarity whose FMR is at most false_match_rate (the table's top if none is)."""
    for similarity, rate in zip(calibration.similarities, calibration.false_match_rates, strict=True):
        if rate <= false_match_rate:
            return similarity
    return calibration.similarities[-1]


def calibration_to_dict(calibration: ScoreCalibration) -> dict[str, object]:
    data: dict[str, object] = {
        "model_id": calibration.model_id,
        "similarities": list(calibration.similarities),
        "false_match_rates": list(calibration.false_match_rates),
        "impostor_pairs": calibration.impostor_pairs,
        "measured_on": calibration.measured_on,
    }
    if calibration.conditioned:
        # Quality-conditioned tables (evaluation/quality_calibration.py); the model id is the outer one.
        data["conditioned"] = {
            condition: {
                "similarities": list(table.similarities),
                "false_match_rates": list(table.false_match_rates),
                "impostor_pairs": table.impostor_pairs,
                "measured_on": table.measured_on,
            }
            for condition, table in calibration.conditioned
        }
    return data


def write_calibration_json(calibration: ScoreCalibration, path: Path | str) -> None:
    """Write the table as JSON atomically (temp file then os.replace)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(calibration_to_dict(calibration), indent=1) + "\n"
    descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        # mkstemp creates the file private (0600); the table ships as package data that everyone reads.
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def read_calibration_json(path: Path | str) -> ScoreCalibration:
    """Read a table written by write_calibration_json, checking it is monotone."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    model_id = str(data["model_id"])
    conditioned = tuple(
        (str(condition), _table_from_dict(table, model_id, f"{path} ({condition})"))
        for condition, table in dict(data.get("conditioned") or {}).items()
    )
    unknown = sorted({condition for condition, _ in conditioned} - set(QUALITY_CONDITIONS[1:]))
    if unknown:
        raise ValueError(f"{path}: unknown quality condition(s) {', '.join(unknown)}")
    return dataclasses.replace(_table_from_dict(data, model_id, str(path)), conditioned=conditioned)


def _table_from_dict(data: dict[str, Any], model_id: str, where: str) -> ScoreCalibration:
    similarities = tuple(float(value) for value in _list(data, "similarities"))
    rates = tuple(float(value) for value in _list(data, "false_match_rates"))
    if len(similarities) != len(rates) or not similarities:
        raise ValueError(f"{where}: similarities and false_match_rates must be non-empty and of equal length")
    if any(b <= a for a, b in itertools.pairwise(similarities)):
        raise ValueError(f"{where}: similarities must ascend strictly")
    if any(b > a for a, b in itertools.pairwise(rates)):
        raise ValueError(f"{where}: false_match_rates must not increase")
    return ScoreCalibration(
        model_id=model_id,
        similarities=similarities,
        false_match_rates=rates,
        impostor_pairs=int(data["impostor_pairs"]),
        measured_on=str(data["measured_on"]),
    )


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list")
    return value
