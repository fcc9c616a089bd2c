"""What every grid detector shares: scaling a photo for detection, non-maximum suppression, and mapping the
survivors back to the photo's pixels as Detections. A detector supplies only its blob and its decoding."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.core.types import BoundingBox, Detection
from facetrace.vision.geometry import nms
from facetrace.vision.sessions import ModelSession

FloatArray = npt.NDArray[np.float32]
# (boxes (n, 4) x1 y1 x2 y2, landmarks (n, 5, 2), scores (n,)) in the pixels of the image the network saw.
Decoded = tuple[FloatArray, FloatArray, FloatArray]

# Photos larger than this (longest side) are shrunk for detection: the detectors were trained at 640 px, faces in a
# 1280 px view are still ~10 px at the smallest, and the cost grows with the pixel count. Boxes are mapped back.
DEFAULT_MAX_DETECTION_SIDE_PX = 1280
# Smaller images are enlarged first: faces below ~20 px fall under the smallest anchors (stride 8).
DEFAULT_MIN_DETECTION_SIDE_PX = 320
MAX_UPSCALE = 4.0
# Candidates kept before NMS and faces kept after it (OpenCV's FaceDetectorYN uses 5000 before NMS).
PRE_NMS_TOP_K = 5000
MAX_FACES = 750


def detection_scale(width: int, height: int, max_side_px: int, min_side_px: int) -> float:
    """The factor applied to an image before detection (1.0 when it already fits)."""
    longest = max(width, height)
    if longest > max_side_px:
        return max_side_px / longest
    if longest < min_side_px:
        return min(min_side_px / longest, MAX_UPSCALE)
    return 1.0


def detect_scaled(
    bgr: npt.NDArray[np.uint8],
    infer: Callable[[npt.NDArray[np.uint8]], Decoded],
    *,
    nms_iou: float,
    max_side_px: int,
    min_side_px: int,
) -> list[Detection]:
    """Scale the photo, run infer on it, keep the best non-overlapping faces, map them back; largest first."""
    height, width = bgr.shape[:2]
    scale = detection_scale(width, height, max_side_px, min_side_px)
    work = bgr
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        work = np.asarray(cv2.resize(bgr, size, interpolation=interpolation), dtype=np.uint8)
    boxes, landmarks, scores = infer(work)
    if scores.size == 0:
        return []
    if scores.size > PRE_NMS_TOP_K:
        top = np.argsort(-scores, kind="stable")[:PRE_NMS_TOP_K]
        boxes, landmarks, scores = boxes[top], landmarks[top], scores[top]
    keep = nms(boxes, scores, nms_iou, max_keep=MAX_FACES)
    # Back to the caller's pixels, per axis: rounding the resized size makes the two factors differ slightly.
    factors = np.array([width / work.shape[1], height / work.shape[0]], dtype=np.float32)
    return to_detections(boxes[keep] * np.tile(factors, 2), landmarks[keep] * factors, scores[keep], width, height)


def to_detections(
    boxes: FloatArray, landmarks: FloatArray, scores: FloatArray, width: int, height: int
) -> list[Detection]:
    """Decoded boxes (n, 4), landmarks (n, 5, 2) and scores in image pixels as Detections, largest first."""
    detections: list[Detection] = []
    for box, points, score in zip(boxes, landmarks, scores, strict=True):
        # Boxes of faces cut by the frame are clipped to it; landmarks are left as predicted (alignment needs them).
        x1, y1 = float(np.clip(box[0], 0, width)), float(np.clip(box[1], 0, height))
        x2, y2 = float(np.clip(box[2], 0, width)), float(np.clip(box[3], 0, height))
        if x2 - x1 < 1.0 or y2 - y1 < 1.0:
            continue
        detections.append(
            Detection(
                box=BoundingBox(x1, y1, x2, y2),
                landmarks=np.ascontiguousarray(points, dtype=np.float32),
                score=float(score),
            )
        )
    detections.sort(key=lambda d: d.box.area, reverse=True)
    return detections


class GridDetector:
    """A detector over a ModelSession: the image scaling, NMS and mapping back are shared; subclasses supply
    _infer (blob, run, decode) for their network."""

    def __init__(
        self,
        session: ModelSession,
        *,
        score_threshold: float,
        nms_iou: float,
        colour_order: str,
        max_side_px: int = DEFAULT_MAX_DETECTION_SIDE_PX,
        min_side_px: int = DEFAULT_MIN_DETECTION_SIDE_PX,
    ) -> None:
        self._session = session
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self._swap_rb = colour_order == "RGB"
        self.max_side_px = max_side_px
        self.min_side_px = min_side_px

    def detect(self, bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        """Every face scoring at least score_threshold, largest first, in the pixels of bgr."""
        return detect_scaled(
            bgr, self._infer, nms_iou=self.nms_iou, max_side_px=self.max_side_px, min_side_px=self.min_side_px
        )

    def _infer(self, work: npt.NDArray[np.uint8]) -> Decoded:
        raise NotImplementedError
