"""The same-photo signature: copies correlate near 1 after the ECC alignment; pairs that do not correlate even
with a few pixels of shift are answered without it (the alignment is most of a comparison's cost). The thresholds
on real photos: bench/search_marks.py and tests/integration/test_search_outcomes.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facetrace.vision import signatures
from facetrace.vision.signatures import (
    ALIGNMENT_GATE,
    WARP_SIDE,
    FaceCrop,
    photo_correlation,
    shifted_correlation,
)


def _texture(seed: int, side: int = WARP_SIDE + 16) -> np.ndarray:
    """Smooth random grey texture, a stand-in for a face crop's pixels (0-255)."""
    noise = np.random.default_rng(seed).uniform(0, 255, (side, side)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=3.0)
    return np.asarray(cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX), dtype=np.float32)


def _crop(pixels: np.ndarray, dx: int = 0, dy: int = 0) -> FaceCrop:
    margin = (pixels.shape[0] - WARP_SIDE) // 2
    window = pixels[margin + dy : margin + dy + WARP_SIDE, margin + dx : margin + dx + WARP_SIDE]
    return FaceCrop(np.ascontiguousarray(window, dtype=np.float32), np.ones((WARP_SIDE, WARP_SIDE), np.uint8))


@pytest.fixture
def ecc_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = cv2.findTransformECC

    def counting(*args: object) -> object:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(signatures.cv2, "findTransformECC", counting)
    return calls


def test_a_shifted_copy_passes_the_gate_and_is_aligned_to_one(ecc_calls: list[int]) -> None:
    pixels = _texture(1)
    original, copy = _crop(pixels), _crop(pixels + 12.0, dx=3, dy=-2)  # brighter and a few pixels off
    shifted = shifted_correlation(original, copy)
    assert shifted is not None and shifted > 0.95 >= ALIGNMENT_GATE
    correlation = photo_correlation(original, copy)
    assert ecc_calls == [1]
    assert correlation is not None and correlation > 0.99


def test_another_photo_is_answered_without_the_alignment(ecc_calls: list[int]) -> None:
    one, other = _crop(_texture(1)), _crop(_texture(2))
    shifted = shifted_correlation(one, other)
    assert shifted is not None and shifted < ALIGNMENT_GATE
    assert photo_correlation(one, other) == pytest.approx(shifted)
    assert ecc_calls == []


def test_a_flat_crop_has_no_correlation(ecc_calls: list[int]) -> None:
    flat = FaceCrop(np.full((WARP_SIDE, WARP_SIDE), 128, np.float32), np.ones((WARP_SIDE, WARP_SIDE), np.uint8))
    assert shifted_correlation(flat, _crop(_texture(3))) is None
    assert photo_correlation(_crop(_texture(3)), flat) is None
    assert ecc_calls == []


def test_crops_that_share_too_few_pixels_are_not_compared(ecc_calls: list[int]) -> None:
    pixels = _texture(4)
    half = np.zeros((WARP_SIDE, WARP_SIDE), np.uint8)
    half[:, : WARP_SIDE // 3] = 1
    left = FaceCrop(_crop(pixels).pixels, half)
    assert photo_correlation(left, _crop(pixels)) is None
    assert ecc_calls == []
