"""Photo restoration before detection: a median filter for grainy photos, a contrast stretch for flat ones.

Measured on LFW (docs/robustness.md, "Restoration"): under Gaussian noise of sigma 40 grey levels YuNet finds the
face in about a third of the photos and the embeddings of those it finds are poor (TAR at the 1e-3 threshold 26% of
80 probes); on a copy passed through a 5x5 median filter it finds nearly all of them and the crop from that copy
matches (99%). A photo whose contrast was cut to a fifth loses 7 points of TAR, which stretching its grey range back
recovers. Neither changes a clean photo: both are applied only when the photo measures grainy or flat, by bounds
that no clean LFW photo reached.

Only what the detector and the embedder see is restored: quality is still assessed, and the thumbnail cut, from the
photo as it came, so a restored face keeps the flags (noisy, low contrast) that tell a reviewer it is a weak one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

BgrImage = npt.NDArray[np.uint8]

RESTORATION_MODES = ("off", "auto")
DEFAULT_RESTORATION = "auto"

# Grain: mean absolute difference (grey levels) between the grey photo and its 3x3 median, at the photo's own
# resolution. 150 LFW photos: clean p99 2.1 (JPEG 10: 2.3); Gaussian noise sigma 10: 3.9-5.2, sigma 20: 7.4-9.6,
# sigma 40: 14.2-18.7. Sigma 10 costs nothing measurable and is left alone.
GRAIN_BOUND = 6.0
MEDIAN_KERNEL = 5  # sigma 40: TAR 26% plain, 86% with a 3x3 median, 99% with 5x5; sigma 20: mean similarity +0.05
# ...but only on photos at least this large: in a small photo fine detail reads as grain (LFW shrunk so that the face
# is 24 px wide, 46-80 px photos, reaches 7.0 at p99) and a 5x5 median erases the face; with denoising on them the
# robustness benchmark's 24-px row lost 3.5 points of TAR.
MIN_DENOISE_SIDE_PX = 128
# Flatness: grey range between the 1st and 99th percentiles. Clean LFW p1 156 (1 of 13,233 photos below 110);
# darkened (gamma 3) p1 84; contrast kept at 40%: 63-102, at 20%: 32-51. Stretching raised the mean similarity to the
# clean photo from 0.66 to 0.90 at 20% and from 0.92 to 0.96 at 40% (where the TAR is 100% either way), and did
# nothing for darkened photos (a bound of 110 cost half a point of TAR on gamma 3); so the bound sits below both.
FLAT_RANGE_BOUND = 80.0
STRETCH_PERCENTILES = (0.5, 99.5)
# Measured on a window of at most this many pixels a side (the centre of a large photo): the grain of a 12 MP photo
# is at its own resolution, and a window is enough to read it.
MEASURE_WINDOW_PX = 1024
RANGE_SAMPLE_SIDE_PX = 512


@dataclass(frozen=True)
class PhotoCondition:
    grain: float  # grey levels, see GRAIN_BOUND
    grey_range: float  # grey levels, see FLAT_RANGE_BOUND

    @property
    def grainy(self) -> bool:
        return self.grain >= GRAIN_BOUND

    @property
    def flat(self) -> bool:
        return self.grey_range < FLAT_RANGE_BOUND


def _grey(bgr: BgrImage) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def grey_percentiles(grey: npt.NDArray[np.uint8], percentiles: tuple[float, ...]) -> tuple[float, ...]:
    """np.percentile(grey, percentiles) (its default, linear interpolation), read off the 256-bin histogram: the same
    values, without sorting a copy of the photo (this runs on every photo ingested or searched)."""
    counts = np.bincount(grey.ravel(), minlength=256)
    ends = np.cumsum(counts)  # ends[v]: how many pixels are <= v
    last = int(ends[-1]) - 1
    values = []
    for q in percentiles:
        position = q / 100.0 * last
        below = int(np.floor(position))
        ranks = np.array([below, min(below + 1, last)])
        low, high = np.searchsorted(ends, ranks, side="right")  # the value at each rank of the sorted pixels
        values.append(float(low + (position - below) * (high - low)))
    return tuple(values)


def _grey_range(bgr: BgrImage) -> float:
    """Grey p1-p99 range, read on a strided sample (a pixel in every step x step block) of at most 512 px a side."""
    step = max(1, max(bgr.shape[:2]) // RANGE_SAMPLE_SIDE_PX)
    low, high = grey_percentiles(_grey(np.ascontiguousarray(bgr[::step, ::step])), (1.0, 99.0))
    return high - low


def measure(bgr: BgrImage) -> PhotoCondition:
    """How grainy and how flat a photo is (see the bounds above). Only the centre window and the range sample are
    turned grey: this runs on every photo ingested or searched."""
    height, width = bgr.shape[:2]
    top = max(0, (height - MEASURE_WINDOW_PX) // 2)
    left = max(0, (width - MEASURE_WINDOW_PX) // 2)
    window = _grey(np.ascontiguousarray(bgr[top : top + MEASURE_WINDOW_PX, left : left + MEASURE_WINDOW_PX]))
    grain = float(np.mean(np.abs(window.astype(np.int16) - cv2.medianBlur(window, 3).astype(np.int16))))
    return PhotoCondition(grain=grain, grey_range=_grey_range(bgr))


def restore(bgr: BgrImage, mode: str = DEFAULT_RESTORATION) -> tuple[BgrImage, tuple[str, ...]]:
    """The photo the detector and embedder should see, and the steps applied ("denoised", "contrast_stretched").

    With mode "off", or a photo neither grainy nor flat, the photo itself and no steps.
    """
    if mode == "off":
        return bgr, ()
    condition = measure(bgr)
    steps: list[str] = []
    restored = bgr
    if condition.grainy and min(bgr.shape[:2]) >= MIN_DENOISE_SIDE_PX:
        restored = np.asarray(cv2.medianBlur(restored, MEDIAN_KERNEL), dtype=np.uint8)
        steps.append("denoised")
    if condition.flat or (steps and _grey_range(restored) < FLAT_RANGE_BOUND):
        low, high = grey_percentiles(_grey(restored), STRETCH_PERCENTILES)
        scale = 255.0 / max(high - low, 1.0)
        restored = np.clip((restored.astype(np.float32) - low) * scale, 0, 255).astype(np.uint8)
        steps.append("contrast_stretched")
    return restored, tuple(steps)
