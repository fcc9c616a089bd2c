"""Cut faces out of images: the aligned crop an embedder reads, and the thumbnail a person looks at."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.core.types import BoundingBox
from facetrace.vision.geometry import arcface_template, estimate_similarity_transform

BgrImage = npt.NDArray[np.uint8]

# Thumbnails show a little context around the detector's tight box, and stay small enough to store per face.
THUMBNAIL_ENLARGE = 1.3
THUMBNAIL_MAX_SIDE_PX = 160


def align_face(bgr: BgrImage, landmarks: npt.NDArray[np.float32], width: int = 112, height: int = 112) -> BgrImage:
    """Warp the face so its five landmarks land on the ArcFace template of a width x height crop.

    A similarity transform (rotation, uniform scale, shift) keeps the face's proportions, which is what ArcFace-family
    embedders (SFace included) were trained on. Pixels from outside the image are black, as in InsightFace and
    OpenCV's FaceRecognizerSF.alignCrop.
    """
    matrix = estimate_similarity_transform(landmarks, arcface_template(width, height))
    crop = cv2.warpAffine(
        bgr, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )
    return np.ascontiguousarray(crop, dtype=np.uint8)


def crop_thumbnail(
    bgr: BgrImage,
    box: BoundingBox,
    *,
    enlarge: float = THUMBNAIL_ENLARGE,
    max_side_px: int = THUMBNAIL_MAX_SIDE_PX,
) -> BgrImage:
    """The face box grown by `enlarge` around its centre, clipped to the image, shrunk to at most max_side_px."""
    height, width = bgr.shape[:2]
    cx = (box.x1 + box.x2) / 2
    cy = (box.y1 + box.y2) / 2
    half_w = max(box.width, 1.0) * enlarge / 2
    half_h = max(box.height, 1.0) * enlarge / 2
    x1 = int(np.clip(np.floor(cx - half_w), 0, width - 1))
    y1 = int(np.clip(np.floor(cy - half_h), 0, height - 1))
    x2 = int(np.clip(np.ceil(cx + half_w), x1 + 1, width))
    y2 = int(np.clip(np.ceil(cy + half_h), y1 + 1, height))
    crop = bgr[y1:y2, x1:x2]
    longest = max(crop.shape[0], crop.shape[1])
    if longest > max_side_px:
        scale = max_side_px / longest
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return np.ascontiguousarray(crop)
