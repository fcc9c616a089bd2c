"""Which structure a FAISS gallery gets: exact below APPROXIMATE_FROM faces, IVF codes with re-ranking above.

Every size threshold is read here and only here, so one module decides when a gallery starts in, or is switched to,
one structure or the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

EXACT_STRUCTURE = "IDMap2,Flat"

StructureChoice = Literal["auto", "exact", "ivf"]
STRUCTURE_CHOICES: tuple[str, ...] = ("auto", "exact", "ivf")
# Below this many faces an exact scan is fast enough (a few ms at dim 512) and needs no training.
APPROXIMATE_FROM = 200_000
# An approximate gallery that shrinks below this goes back to exact at the next save (hysteresis, so a gallery near
# the threshold does not flip at every save).
EXACT_BELOW = APPROXIMATE_FROM // 2
# At most this many inverted lists: at 10M faces, fewer and longer lists scanned with fast-scan PQ beat 4 * sqrt(n).
MAX_NLIST = 4096
DEFAULT_RERANK = 100
# The recall@1 against exact search that a trained approximate index tunes its nprobe to reach (Settings.target_recall).
DEFAULT_TARGET_RECALL = 0.99
# SQ8 codes (one byte per dimension) up to this dimension, 4-bit fast-scan PQ above.
CODE_BYTES_BUDGET = 128


@dataclass(frozen=True)
class Structure:
    """What a FaissIndex holds: exact, or IVF codes with exact re-ranking of a shortlist."""

    kind: Literal["exact", "ivf"]
    nlist: int = 0
    code: str = ""
    nprobe: int = 0
    rerank: int = 0

    @property
    def factory(self) -> str:
        """The faiss index_factory string of the structure (the IVF part for the approximate one)."""
        if self.kind == "exact":
            return EXACT_STRUCTURE
        return f"IVF{self.nlist},{self.code}"

    def describe(self) -> str:
        if self.kind == "exact":
            return EXACT_STRUCTURE
        return f"{self.factory},nprobe={self.nprobe},rerank={self.rerank}"


def nlist_for(count: int) -> int:
    """About 4 * sqrt(n) inverted lists, at least 16 (so that small forced galleries still train), at most MAX_NLIST."""
    return max(16, min(MAX_NLIST, round(4 * math.sqrt(max(count, 1)))))


def nprobe_for(nlist: int) -> int:
    """Lists visited per query: 1/8 of them, at least 8 (tuned with bench/search_scale.py, see docs/backends.md)."""
    return min(nlist, max(8, nlist // 8))


def code_for_dim(dim: int) -> str:
    """SQ8 (one byte per dimension) up to CODE_BYTES_BUDGET dimensions, else 4-bit fast-scan PQ ("PQ{m}x4fs") with
    one sub-quantizer per about 8 dimensions (m divides dim)."""
    if dim <= CODE_BYTES_BUDGET:
        return "SQ8"
    target = max(1, dim // 8)
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return f"PQ{min(divisors, key=lambda m: (abs(m - target), -m))}x4fs"


def structure_for_size(expected_count: int, dim: int) -> Structure:
    """The structure for a gallery of about expected_count vectors of dimension dim: exact below APPROXIMATE_FROM."""
    if expected_count < APPROXIMATE_FROM:
        return Structure("exact")
    return approximate_structure(expected_count, dim)


def approximate_structure(
    expected_count: int,
    dim: int,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    rerank: int | None = None,
    code: str | None = None,
) -> Structure:
    lists = int(nlist) if nlist else nlist_for(expected_count)
    return Structure(
        "ivf",
        nlist=lists,
        code=code or code_for_dim(dim),
        nprobe=int(nprobe) if nprobe else nprobe_for(lists),
        rerank=int(rerank) if rerank else DEFAULT_RERANK,
    )


def initial_structure(
    choice: str,
    expected_count: int,
    dim: int,
    *,
    nlist: int | None,
    code: str | None,
    nprobe: int | None,
    rerank: int | None,
) -> Structure:
    """The structure a new (or fresh) index starts in: the one chosen, or with "auto" the one for expected_count."""
    if choice == "exact":
        return Structure("exact")
    if choice == "ivf":
        # Without a size to go by, nlist is left to training time (4 * sqrt of the count then).
        lists = nlist or (nlist_for(expected_count) if expected_count else 0)
        return Structure(
            "ivf",
            nlist=lists,
            code=code or code_for_dim(dim),
            nprobe=nprobe or (nprobe_for(lists) if lists else 0),
            rerank=rerank or DEFAULT_RERANK,
        )
    chosen = structure_for_size(expected_count, dim)
    if chosen.kind == "ivf":
        return approximate_structure(expected_count, dim, nlist=nlist, nprobe=nprobe, rerank=rerank, code=code)
    return chosen


def structure_for_count(
    choice: str, count: int, dim: int, current: Structure, *, nlist: int | None, code: str | None
) -> Structure:
    """The structure a restructure moves count vectors into: the one chosen, or with "auto" the one for the count.
    An approximate one keeps the search depth (nprobe, rerank) of the current approximate structure."""
    keep = {"nprobe": current.nprobe or None, "rerank": current.rerank or None} if current.kind == "ivf" else {}
    if choice == "exact" or (choice == "auto" and count < APPROXIMATE_FROM):
        return Structure("exact")
    return approximate_structure(max(count, 1), dim, nlist=nlist, code=code, **keep)


def outgrown(current: Structure, count: int) -> bool:
    """Whether a gallery of count vectors in current (with "auto") is due a switch: an exact one that has reached
    APPROXIMATE_FROM, or an approximate one that has shrunk below EXACT_BELOW."""
    return (current.kind == "exact" and count >= APPROXIMATE_FROM) or (current.kind == "ivf" and count < EXACT_BELOW)
