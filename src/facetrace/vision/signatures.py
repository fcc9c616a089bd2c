"""A face's pixel signature: what tells a copy of one photo from another photo of the same person.

Two photos of one person give similar embeddings (that is the embedder's job); a re-encoded, resized or slightly
cropped copy of one photo also gives the same pixels around the face: hair, the light on the skin, the background.
The signature is the face's thumbnail (the detector's box grown by 1.3, alignment.crop_thumbnail) warped onto one
canonical grey crop by its five landmarks (so box jitter and scale do not matter), a little wider than the face;
its mean taken away and scaled to unit length. The dot product of two signatures is their normalised
cross-correlation: 1 for the same pixels up to brightness and contrast. Thresholds: search/service.py, measured in
bench/search_marks.py.

Both faces' signatures are computed from what is stored or at hand: the thumbnail JPEG, the box and the landmarks in
the photo's pixels. The thumbnail's own pixels are found from the box by crop_thumbnail's rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.core.types import BoundingBox
from facetrace.vision.alignment import THUMBNAIL_ENLARGE, THUMBNAIL_MAX_SIDE_PX
from facetrace.vision.geometry import arcface_template, estimate_similarity_transform

# The canonical crop: WARP_SIDE pixels wide, the ArcFace template shrunk by FACE_SHARE about its centre (so the crop
# shows some hair and background).
WARP_SIDE = 64
FACE_SHARE = 0.9
ECC_ITERATIONS = 50
# A signature needs most of its crop inside the thumbnail.
MIN_COVERED_SHARE = 0.6
# The ECC alignment is most of a comparison's cost (about 2.8 ms a pair). Copies of one photo already correlate well
# without it, their crops being warped onto one template by their own landmarks: the best correlation of a's crop
# centre over b's crop shifted by up to SHIFT_PX pixels (no rotation or scale; 0.05 ms) is the gate. A pair below
# ALIGNMENT_GATE is not aligned, and that value is its answer. Measured in bench/search_marks.py (LFW, 600 copies and
# 1,822 other-photo pairs of one person similar enough to be compared): copies 0.775 and up, other photos' median
# 0.54, so 69% of those pairs skip the alignment and the marks are the same as with it.
ALIGNMENT_GATE = 0.65
SHIFT_PX = 6


def _thumbnail_landmarks(
    box: BoundingBox, landmarks: npt.NDArray[np.float32], width: int, height: int
) -> npt.NDArray[np.float32]:
    """The landmarks in the thumbnail's pixels. crop_thumbnail clips its crop to the photo, whose size is not kept:
    the crop's left and top edges are known, and the scale is the larger of the two sides' ratios (the side the
    photo did not clip), so it is right unless the photo clipped both the right and the bottom edge."""
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    half_w = max(box.width, 1.0) * THUMBNAIL_ENLARGE / 2
    half_h = max(box.height, 1.0) * THUMBNAIL_ENLARGE / 2
    x1, y1 = max(0, math.floor(cx - half_w)), max(0, math.floor(cy - half_h))
    full_w, full_h = max(1, math.ceil(cx + half_w) - x1), max(1, math.ceil(cy + half_h) - y1)
    scale = min(1.0, max(width / full_w, height / full_h)) if max(width, height) >= THUMBNAIL_MAX_SIDE_PX else 1.0
    origin = np.asarray([x1, y1], dtype=np.float32)
    points: npt.NDArray[np.float32] = (np.asarray(landmarks, dtype=np.float32).reshape(5, 2) - origin) * scale
    return points.astype(np.float32)


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A face's thumbnail warped onto the canonical grey crop, with the mask of pixels the thumbnail covered."""

    pixels: npt.NDArray[np.float32]  # (WARP_SIDE, WARP_SIDE), grey levels 0-255
    covered: npt.NDArray[np.uint8]  # (WARP_SIDE, WARP_SIDE), 1 where the thumbnail had pixels


def face_crop(thumbnail_jpeg: bytes, box: BoundingBox, landmarks: npt.NDArray[np.float32]) -> FaceCrop | None:
    """The canonical crop of a face from its thumbnail, box and landmarks; None when the thumbnail cannot be read or
    covers too little of the crop."""
    if not thumbnail_jpeg:
        return None
    grey = cv2.imdecode(np.frombuffer(thumbnail_jpeg, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None or grey.size == 0:
        return None
    points = _thumbnail_landmarks(box, landmarks, grey.shape[1], grey.shape[0])
    centre = np.asarray([WARP_SIDE / 2, WARP_SIDE / 2], dtype=np.float32)
    template = np.asarray((arcface_template(WARP_SIDE, WARP_SIDE) - centre) * FACE_SHARE + centre, dtype=np.float32)
    matrix = estimate_similarity_transform(points, template)
    size = (WARP_SIDE, WARP_SIDE)
    # Smooth first when the warp shrinks the thumbnail, so fine JPEG noise does not alias into the crop.
    shrink = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    source = np.asarray(grey, dtype=np.float32)
    if shrink < 0.8:
        source = np.asarray(cv2.GaussianBlur(source, (0, 0), sigmaX=0.5 / shrink), dtype=np.float32)
    # Outside the thumbnail the edge pixels are repeated: a black border would be an edge for ECC to line up.
    pixels = cv2.warpAffine(source, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.ones_like(source), matrix, size, flags=cv2.INTER_LINEAR)
    covered = (inside > 0.99).astype(np.uint8)
    if covered.mean() < MIN_COVERED_SHARE:
        return None
    return FaceCrop(pixels.astype(np.float32), covered)


def shifted_correlation(a: FaceCrop, b: FaceCrop) -> float | None:
    """The best normalised cross-correlation of a's crop centre over b's crop shifted by up to SHIFT_PX pixels
    either way (no rotation or scale); None when either is flat."""
    centre = a.pixels[SHIFT_PX:-SHIFT_PX, SHIFT_PX:-SHIFT_PX]
    if float(centre.std()) < 1e-3 or float(b.pixels.std()) < 1e-3:
        return None
    return float(cv2.matchTemplate(b.pixels, centre, cv2.TM_CCOEFF_NORMED).max())


def photo_correlation(a: FaceCrop, b: FaceCrop) -> float | None:
    """How far two faces show the same pixels: the normalised cross-correlation of their canonical crops after the
    affine warp that best lines b up with a (ECC: landmarks found on a copy can sit a few pixels and some percent of
    scale away from the original's), over the pixels both cover. About 1 for copies of one photo; None when the
    alignment does not converge. A pair below ALIGNMENT_GATE even with a few pixels of shift (shifted_correlation)
    is answered with that value, without the alignment."""
    mask = (a.covered & b.covered).astype(np.uint8)
    if mask.mean() < MIN_COVERED_SHARE:
        return None
    shifted = shifted_correlation(a, b)
    if shifted is None or shifted < ALIGNMENT_GATE:
        return shifted
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 1e-4)
    try:
        start = np.eye(2, 3, dtype=np.float32)
        _, found = cv2.findTransformECC(a.pixels, b.pixels, start, cv2.MOTION_AFFINE, criteria, mask, 5)
    except cv2.error:
        return None
    warp = np.asarray(found, dtype=np.float32)
    size = (WARP_SIDE, WARP_SIDE)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    aligned = np.asarray(
        cv2.warpAffine(b.pixels, warp, size, flags=flags, borderMode=cv2.BORDER_REPLICATE), dtype=np.float32
    )
    moved = np.asarray(cv2.warpAffine(b.covered, warp, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP))
    both = (moved > 0) & (a.covered > 0)
    if both.mean() < MIN_COVERED_SHARE:
        return None
    x = a.pixels[both] - float(a.pixels[both].mean())
    y = aligned[both] - float(aligned[both].mean())
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(np.dot(x, y) / norm) if norm > 1e-6 else None


def same_photo_correlation(
    a: tuple[bytes, BoundingBox, npt.NDArray[np.float32]], b: tuple[bytes, BoundingBox, npt.NDArray[np.float32]]
) -> float | None:
    """photo_correlation of two faces given as (thumbnail JPEG, box, landmarks); None when either has no crop."""
    first, second = face_crop(*a), face_crop(*b)
    if first is None or second is None:
        return None
    return photo_correlation(first, second)
