"""YuNet (libfacedetection, 2023mar) face detection: the network runs in a ModelSession, the decoding here in numpy.

The decoding follows OpenCV's FaceDetectorYN (modules/objdetect/src/face_detect.cpp): anchor-free heads at strides
8, 16 and 32; per cell a class and an objectness score, a box as centre offset and log size, and five landmarks as
offsets, all in units of the stride. Input is the raw 0..255 image (no mean, no scaling), padded at the bottom and
right to a multiple of 32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from facetrace.core.types import Detection
from facetrace.vision.detectors.common import (
    DEFAULT_MAX_DETECTION_SIDE_PX,
    DEFAULT_MIN_DETECTION_SIDE_PX,
    Decoded,
    GridDetector,
    detection_scale,
    to_detections,
)
from facetrace.vision.sessions import ModelSession

# Re-exported: callers and tests name them from here.
__all__ = [
    "DEFAULT_MAX_DETECTION_SIDE_PX",
    "DEFAULT_MIN_DETECTION_SIDE_PX",
    "STRIDES",
    "YUNET_OUTPUT_NAMES",
    "YuNetDetector",
    "decode_yunet",
    "detection_scale",
    "detections_as_arrays",
    "to_detections",
]

FloatArray = npt.NDArray[np.float32]

STRIDES = (8, 16, 32)
# The network's downsampling: input height and width must be multiples of the largest stride.
INPUT_DIVISOR_PX = 32
YUNET_OUTPUT_NAMES = tuple(f"{head}_{stride}" for head in ("cls", "obj", "bbox", "kps") for stride in STRIDES)


def decode_yunet(
    outputs: Mapping[str, FloatArray], input_height: int, input_width: int, score_threshold: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Decode raw YuNet outputs for an input of input_height x input_width pixels (already padded).

    Returns (boxes (n, 4) as x1, y1, x2, y2; landmarks (n, 5, 2); scores (n,)) in input pixels, before NMS.
    """
    all_boxes: list[FloatArray] = []
    all_kps: list[FloatArray] = []
    all_scores: list[FloatArray] = []
    for stride in STRIDES:
        rows = input_height // stride
        cols = input_width // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
        if cls.size != rows * cols:
            raise ValueError(f"stride {stride}: expected {rows}x{cols} cells, the model returned {cls.size}")
        scores = np.sqrt(cls * obj)
        chosen = np.nonzero(scores >= score_threshold)[0]
        if chosen.size == 0:
            continue
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[chosen]
        kps = outputs[f"kps_{stride}"].reshape(-1, 10)[chosen].reshape(-1, 5, 2)
        col = (chosen % cols).astype(np.float32)
        row = (chosen // cols).astype(np.float32)
        cx = (col + bbox[:, 0]) * stride
        cy = (row + bbox[:, 1]) * stride
        w = np.exp(bbox[:, 2]) * stride
        h = np.exp(bbox[:, 3]) * stride
        all_boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
        landmarks = np.empty_like(kps)
        landmarks[:, :, 0] = (kps[:, :, 0] + col[:, None]) * stride
        landmarks[:, :, 1] = (kps[:, :, 1] + row[:, None]) * stride
        all_kps.append(landmarks)
        all_scores.append(scores[chosen])
    if not all_scores:
        return (np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float32))
    return (
        np.concatenate(all_boxes).astype(np.float32),
        np.concatenate(all_kps).astype(np.float32),
        np.concatenate(all_scores).astype(np.float32),
    )


class YuNetDetector(GridDetector):
    """Finds faces in a BGR image: boxes, five landmarks in the core order (image-left eye first), scores."""

    def __init__(
        self,
        session: ModelSession,
        *,
        score_threshold: float,
        nms_iou: float,
        colour_order: str = "BGR",
        max_side_px: int = DEFAULT_MAX_DETECTION_SIDE_PX,
        min_side_px: int = DEFAULT_MIN_DETECTION_SIDE_PX,
    ) -> None:
        missing = set(YUNET_OUTPUT_NAMES) - set(session.output_names)
        if missing:
            raise ValueError(f"not a YuNet model: outputs {sorted(missing)} are missing")
        super().__init__(
            session,
            score_threshold=score_threshold,
            nms_iou=nms_iou,
            colour_order=colour_order,
            max_side_px=max_side_px,
            min_side_px=min_side_px,
        )

    def _infer(self, work: npt.NDArray[np.uint8]) -> Decoded:
        blob, padded_h, padded_w = _to_blob(work, swap_rb=self._swap_rb)
        outputs = dict(zip(self._session.output_names, self._session.run(blob), strict=True))
        return decode_yunet(outputs, padded_h, padded_w, self.score_threshold)


def _to_blob(bgr: npt.NDArray[np.uint8], *, swap_rb: bool) -> tuple[FloatArray, int, int]:
    height, width = bgr.shape[:2]
    padded_h = -(-height // INPUT_DIVISOR_PX) * INPUT_DIVISOR_PX
    padded_w = -(-width // INPUT_DIVISOR_PX) * INPUT_DIVISOR_PX
    # Zero padding at the bottom and right, as FaceDetectorYN does, so coordinates need no offset.
    blob = np.zeros((1, 3, padded_h, padded_w), dtype=np.float32)
    channels = bgr[:, :, ::-1] if swap_rb else bgr
    blob[0, :, :height, :width] = channels.transpose(2, 0, 1)
    return blob, padded_h, padded_w


def detections_as_arrays(detections: Sequence[Detection]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(boxes (n, 4), landmarks (n, 5, 2), scores (n,)) for comparisons and tests."""
    if not detections:
        return (np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float32))
    return (
        np.array([d.box.as_tuple() for d in detections], dtype=np.float32),
        np.stack([d.landmarks for d in detections]).astype(np.float32),
        np.array([d.score for d in detections], dtype=np.float32),
    )
