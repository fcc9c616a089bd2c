"""Repeated-probe detection: the tiled matrix product finds exactly the pairs the all-pairs loop found."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.core.types import SearchRecord
from facetrace.governance.repeats import RepeatedProbe, find_repeated_probes

THRESHOLD = 0.6
AT = datetime(2026, 1, 1, tzinfo=UTC)


def all_pairs(searches: list[SearchRecord], threshold: float) -> list[RepeatedProbe]:
    """The first version of CaseService.repeated_probes, kept verbatim as the reference."""

    def similarity(a: SearchRecord, b: SearchRecord) -> float | None:
        if a.probe_embedding is None or b.probe_embedding is None or a.model_id != b.model_id:
            return None
        if a.probe_embedding.shape != b.probe_embedding.shape:
            return None
        value = float(np.dot(a.probe_embedding, b.probe_embedding))
        return value if math.isfinite(value) else None

    ordered = sorted(searches, key=lambda s: s.search_id)
    found = []
    for later_pos, later in enumerate(ordered):
        for earlier in ordered[:later_pos]:
            if earlier.case_id == later.case_id:
                continue
            same_photo = earlier.probe_sha256 == later.probe_sha256
            value = similarity(earlier, later)
            if same_photo or (value is not None and value >= threshold):
                found.append(
                    RepeatedProbe(
                        earlier.search_id,
                        later.search_id,
                        earlier.case_id,
                        later.case_id,
                        earlier.user,
                        later.user,
                        same_photo,
                        value,
                    )
                )
    return found


def _unit(rng: np.random.Generator, dim: int) -> npt.NDArray[np.float32]:
    vector = rng.standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def searches(seed: int, n: int = 120) -> list[SearchRecord]:
    """Searches over a few people (near-identical probe faces), some photos searched twice, some probes without a
    face embedding, and two models (one of another dimension)."""
    rng = np.random.default_rng(seed)
    people = [_unit(rng, 64) for _ in range(12)]
    made = []
    for number in range(n):
        model, dim = ("m2", 32) if number % 17 == 0 else ("m1", 64)
        person = int(rng.integers(len(people)))
        if dim == 64:
            noisy = people[person] + rng.standard_normal(dim).astype(np.float32) * 0.02
            embedding: npt.NDArray[np.float32] | None = (noisy / np.linalg.norm(noisy)).astype(np.float32)
        else:
            embedding = _unit(rng, dim)
        if number % 11 == 0:
            embedding = None
        photo = f"photo-{int(rng.integers(n // 3))}" if number % 3 == 0 else f"unique-{number}"
        made.append(
            SearchRecord(
                search_id=1000 - number * 7,  # ids out of list order: the order comes from the ids
                case_id=int(rng.integers(5)),
                user=f"user{int(rng.integers(3))}",
                purpose="p",
                probe_sha256=photo,
                probe_name=photo,
                at=AT,
                model_id=model,
                probe_embedding=embedding,
            )
        )
    return made


def _key(repeat: RepeatedProbe) -> tuple[object, ...]:
    return (repeat.earlier_search_id, repeat.later_search_id, repeat.earlier_case_id, repeat.later_case_id,
            repeat.earlier_user, repeat.later_user, repeat.same_photo)  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("tile_rows", "tile_cols"), [(3, 5), (7, 2), (4096, 4096)])
def test_same_pairs_as_comparing_every_pair(seed: int, tile_rows: int, tile_cols: int) -> None:
    made = searches(seed)
    expected = all_pairs(made, THRESHOLD)
    found = find_repeated_probes(made, THRESHOLD, tile_rows=tile_rows, tile_cols=tile_cols)
    assert len(expected) > 50 and any(r.same_photo for r in expected) and any(not r.same_photo for r in expected)
    assert [_key(r) for r in found] == [_key(r) for r in expected]
    for got, want in zip(found, expected, strict=True):
        assert (got.similarity is None) == (want.similarity is None)
        if want.similarity is not None:
            assert got.similarity == pytest.approx(want.similarity, abs=1e-5)


def test_without_a_threshold_only_identical_photos_count() -> None:
    made = searches(3)
    found = find_repeated_probes(made, math.inf)
    assert found and all(r.same_photo for r in found)
    assert [_key(r) for r in found] == [_key(r) for r in all_pairs(made, math.inf)]


def test_one_case_searching_again_is_not_a_repeat() -> None:
    vector = np.ones(8, dtype=np.float32) / np.sqrt(8)
    same_case = [SearchRecord(i, 1, "u", "p", "same", "same", AT, "m", vector) for i in range(1, 50)]
    assert find_repeated_probes(same_case, THRESHOLD) == []
    other = SearchRecord(50, 2, "v", "p", "other", "other", AT, "m", vector)
    found = find_repeated_probes([*same_case, other], THRESHOLD)
    assert len(found) == 49 and all(r.later_search_id == 50 and not r.same_photo for r in found)
