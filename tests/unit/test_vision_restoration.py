"""Restoration's triggers and steps on synthetic photos: grain and flatness are measured, clean photos pass through."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.vision import restoration
from facetrace.vision.restoration import measure, restore


def _photo(size: int = 200, seed: int = 0) -> npt.NDArray[np.uint8]:
    """A smooth gradient with a few shapes: wide grey range, no grain."""
    ramp = np.linspace(10, 245, size, dtype=np.float32)
    grey = (ramp[None, :] * 0.6 + ramp[:, None] * 0.4).astype(np.uint8)
    grey[50:90, 50:150] = 30
    grey[120:160, 80:120] = 220
    return np.repeat(grey[:, :, None], 3, axis=2)


def _noisy(bgr: npt.NDArray[np.uint8], sigma: float, seed: int = 0) -> npt.NDArray[np.uint8]:
    noise = np.random.default_rng(seed).normal(0, sigma, bgr.shape)
    return np.clip(bgr.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _flat(bgr: npt.NDArray[np.uint8], kept: float) -> npt.NDArray[np.uint8]:
    return (128 + (bgr.astype(np.float32) - 128) * kept).astype(np.uint8)


def test_a_clean_photo_is_left_alone() -> None:
    photo = _photo()
    condition = measure(photo)
    assert not condition.grainy and not condition.flat
    restored, steps = restore(photo)
    assert steps == () and restored is photo


def test_a_grainy_photo_is_denoised_and_loses_its_grain() -> None:
    grainy = _noisy(_photo(), 40)
    assert measure(grainy).grainy
    restored, steps = restore(grainy)
    assert steps == ("denoised",)
    assert measure(restored).grain < restoration.GRAIN_BOUND < measure(grainy).grain
    assert restored.shape == grainy.shape and restored.dtype == np.uint8


def test_light_grain_is_below_the_bound() -> None:
    assert not measure(_noisy(_photo(), 3)).grainy


def test_a_flat_photo_gets_its_range_back() -> None:
    flat = _flat(_photo(), 0.2)
    assert measure(flat).flat
    restored, steps = restore(flat)
    assert steps == ("contrast_stretched",)
    assert measure(restored).grey_range > 200


def test_off_never_restores() -> None:
    grainy = _noisy(_flat(_photo(), 0.3), 40)
    restored, steps = restore(grainy, "off")
    assert steps == () and restored is grainy


@pytest.mark.parametrize("size", [(3000, 4000), (40, 30)])
def test_large_and_tiny_photos_are_measured(size: tuple[int, int]) -> None:
    height, width = size
    grainy = _noisy(np.full((height, width, 3), 128, np.uint8), 40)
    condition = measure(grainy)
    assert condition.grainy and np.isfinite(condition.grey_range)


def test_small_photos_are_not_denoised() -> None:
    """In a small photo detail reads as grain and a 5x5 median would erase the face."""
    small = _noisy(_photo(size=restoration.MIN_DENOISE_SIDE_PX - 8), 40)
    assert measure(small).grainy
    restored, steps = restore(small)
    assert "denoised" not in steps and restored.shape == small.shape


def test_grey_percentiles_are_numpys_linear_percentiles() -> None:
    """Read off the histogram, the values are np.percentile's exactly, on sizes down to one pixel and narrow ranges."""
    rng = np.random.default_rng(7)
    percentiles = (0.0, 0.5, 1.0, 50.0, 99.0, 99.5, 100.0)
    samples = [np.full((1, 1), 200), rng.integers(0, 256, (37, 53)), rng.integers(100, 103, (64, 64))]
    samples.append(rng.normal(128, 30, (250, 250)).clip(0, 255))
    for sample in samples:
        grey = sample.astype(np.uint8)
        expected = np.percentile(grey, percentiles)
        np.testing.assert_allclose(restoration.grey_percentiles(grey, percentiles), expected, rtol=0, atol=1e-9)
