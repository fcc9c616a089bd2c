"""Repeated probes: pairs of searches in different cases of the same photo, or of faces within a strict similarity.

The first version compared every pair of searches in Python (n^2 / 2 dot products, one interpreter step each):
about 10 s for 3,000 searches. Here identical photos are grouped by sha256 (linear), and similar faces are found
with a tiled matrix product per model (BLAS), keeping only pairs above the threshold from each tile, so memory stays
bounded (TILE_ROWS x TILE_COLS similarities at a time) however many searches there are. The work is still
quadratic in flops; measured in docs/service.md.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from facetrace.core.types import FloatArray, SearchRecord

# Tiles of 2,048 x 8,192 float32 similarities (64 MiB) keep memory flat and BLAS busy.
TILE_ROWS = 2048
TILE_COLS = 8192


@dataclass(frozen=True)
class RepeatedProbe:
    """Two searches, in different cases, of what is probably the same probe."""

    earlier_search_id: int
    later_search_id: int
    earlier_case_id: int
    later_case_id: int
    earlier_user: str
    later_user: str
    same_photo: bool  # identical probe bytes (sha256)
    similarity: float | None  # of the two main probe faces, when both have one


def find_repeated_probes(
    searches: Sequence[SearchRecord], min_similarity: float, *, tile_rows: int = TILE_ROWS, tile_cols: int = TILE_COLS
) -> list[RepeatedProbe]:
    """Every pair (earlier, later) of searches in different cases with the same probe photo or main probe faces at
    or above min_similarity, ordered by later then earlier search id."""
    ordered = sorted(searches, key=lambda s: s.search_id)
    found: dict[tuple[int, int], float | None] = {}  # (earlier position, later position) -> similarity if known
    for earlier_pos, later_pos in _same_photo_pairs(ordered):
        found[(earlier_pos, later_pos)] = _similarity(ordered[earlier_pos], ordered[later_pos])
    if math.isfinite(min_similarity):
        for earlier_pos, later_pos, similarity in _similar_pairs(ordered, min_similarity, tile_rows, tile_cols):
            found[(earlier_pos, later_pos)] = similarity
    repeats = []
    for earlier_pos, later_pos in sorted(found, key=lambda pair: (pair[1], pair[0])):
        earlier, later = ordered[earlier_pos], ordered[later_pos]
        repeats.append(
            RepeatedProbe(
                earlier.search_id,
                later.search_id,
                earlier.case_id,
                later.case_id,
                earlier.user,
                later.user,
                earlier.probe_sha256 == later.probe_sha256,
                found[(earlier_pos, later_pos)],
            )
        )
    return repeats


def _same_photo_pairs(ordered: Sequence[SearchRecord]) -> Iterator[tuple[int, int]]:
    by_photo: dict[str, list[int]] = defaultdict(list)
    for position, search in enumerate(ordered):
        by_photo[search.probe_sha256].append(position)
    for positions in by_photo.values():
        if len({ordered[p].case_id for p in positions}) < 2:
            continue  # one case searching its own photo again is not a repeat across cases
        for index, later in enumerate(positions):
            for earlier in positions[:index]:
                if ordered[earlier].case_id != ordered[later].case_id:
                    yield earlier, later


def _similar_pairs(
    ordered: Sequence[SearchRecord], min_similarity: float, tile_rows: int, tile_cols: int
) -> Iterator[tuple[int, int, float]]:
    """(earlier, later, similarity) of main probe faces of one model at or above min_similarity, different cases."""
    groups: dict[tuple[str, tuple[int, ...]], list[tuple[int, FloatArray]]] = defaultdict(list)
    for position, search in enumerate(ordered):
        if search.probe_embedding is not None:
            groups[(search.model_id, search.probe_embedding.shape)].append((position, search.probe_embedding))
    for group in groups.values():
        positions = [position for position, _ in group]
        members = np.asarray(positions, dtype=np.int64)
        vectors: FloatArray = np.vstack([vector for _, vector in group]).astype(np.float32)
        cases = np.asarray([ordered[p].case_id for p in positions], dtype=np.int64)
        for row in range(0, len(members), tile_rows):
            row_end = min(row + tile_rows, len(members))
            for col in range(0, row_end, tile_cols):  # only earlier columns: j < i
                col_end = min(col + tile_cols, row_end)
                scores = vectors[row:row_end] @ vectors[col:col_end].T
                later, earlier = np.nonzero(scores >= min_similarity)
                later += row
                earlier += col
                keep = (earlier < later) & (cases[earlier] != cases[later])
                for i, j in zip(later[keep].tolist(), earlier[keep].tolist(), strict=True):
                    value = float(scores[i - row, j - col])
                    if math.isfinite(value):
                        yield int(members[j]), int(members[i]), value


def _similarity(a: SearchRecord, b: SearchRecord) -> float | None:
    if a.probe_embedding is None or b.probe_embedding is None or a.model_id != b.model_id:
        return None
    if a.probe_embedding.shape != b.probe_embedding.shape:
        return None
    value = float(np.dot(a.probe_embedding, b.probe_embedding))
    return value if math.isfinite(value) else None
