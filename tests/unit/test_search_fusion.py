"""The rules behind fusion's one-person check and top_k, on small similarity matrices (the real photos: tests/
integration/test_search_outcomes.py)."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.core.errors import InvalidRequestError
from facetrace.search.service import check_top_k, odd_ones_out

T = 0.37


def _matrix(*pairs: tuple[int, int, float], n: int) -> np.ndarray:
    matrix = np.eye(n, dtype=np.float32)
    for i, j, value in pairs:
        matrix[i, j] = matrix[j, i] = value
    return matrix


def test_photos_that_all_match_have_no_odd_one() -> None:
    assert odd_ones_out(_matrix((0, 1, 0.6), (0, 2, 0.5), (1, 2, 0.7), n=3), T) == ()
    assert odd_ones_out(np.eye(1, dtype=np.float32), T) == ()


def test_a_chain_of_matches_is_one_person() -> None:
    """0 matches 1 and 1 matches 2: one group even though 0 and 2 alone would not match (pose, age)."""
    assert odd_ones_out(_matrix((0, 1, 0.5), (0, 2, 0.2), (1, 2, 0.5), n=3), T) == ()


def test_the_stranger_is_odd_wherever_it_stands() -> None:
    assert odd_ones_out(_matrix((0, 1, 0.1), (0, 2, 0.05), (1, 2, 0.6), n=3), T) == (0,)
    assert odd_ones_out(_matrix((0, 1, 0.6), (0, 2, 0.1), (1, 2, 0.05), n=3), T) == (2,)


def test_a_tie_keeps_the_group_of_the_first_photo() -> None:
    assert odd_ones_out(_matrix((0, 1, 0.1), n=2), T) == (1,)
    two_and_two = _matrix((0, 1, 0.1), (0, 2, 0.6), (1, 3, 0.6), (0, 3, 0.1), (1, 2, 0.1), (2, 3, 0.1), n=4)
    assert odd_ones_out(two_and_two, T) == (1, 3)


@pytest.mark.parametrize("top_k", [0, -1, 1001, 2.5, True, "10"])
def test_top_k_outside_1_to_1000_is_refused(top_k: object) -> None:
    with pytest.raises(InvalidRequestError, match="top_k must be a whole number from 1 to 1000"):
        check_top_k(top_k)  # type: ignore[arg-type]


def test_top_k_from_1_to_1000_is_kept() -> None:
    assert [check_top_k(k) for k in (1, 10, 1000)] == [1, 10, 1000]
    assert check_top_k(np.int64(5)) == 5  # type: ignore[arg-type]
