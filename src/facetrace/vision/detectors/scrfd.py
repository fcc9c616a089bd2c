"""SCRFD (InsightFace, "bnkps" exports such as 2.5G and 10G) face detection: the network in a ModelSession, the
decoding here in numpy.

The decoding follows InsightFace's python-package/insightface/model_zoo/scrfd.py: heads at strides 8, 16 and 32 with
two anchors per cell, anchor centres at (column, row) * stride (the cell's top-left corner, not its middle); per
anchor a sigmoid score, a box as distances (left, top, right, bottom) from the centre and five landmarks as offsets
from it, all in units of the stride. Input is RGB, (x - 127.5) / 128, padded at the bottom and right with black to a
multiple of 32. The landmarks come out in the core order (the subject's right eye, on the image's left, first).

The exported graph fixes its input size (640x640) in its FPN's Resize nodes; graph_fixes turns those into scale
factors so the detector runs at each image's own padded size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from facetrace.vision.detectors.common import (
    DEFAULT_MAX_DETECTION_SIDE_PX,
    DEFAULT_MIN_DETECTION_SIDE_PX,
    Decoded,
    GridDetector,
)
from facetrace.vision.sessions import ModelSession

FloatArray = npt.NDArray[np.float32]

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2
INPUT_DIVISOR_PX = 32
INPUT_MEAN = 127.5
INPUT_SCALE = 1.0 / 128.0
HEADS = ("score", "bbox", "kps")
# Numbers per anchor in each head's output: a score, four box distances, five (x, y) landmarks.
HEAD_WIDTHS = {"score": 1, "bbox": 4, "kps": 10}
# The output names of the 2.5G/10G bnkps exports that name them; in the graph's order (scores, boxes, landmarks, each
# by stride). Exports with anonymous output names (InsightFace's det_10g.onnx) use the same order.
SCRFD_OUTPUT_NAMES = tuple(f"{head}_{stride}" for head in HEADS for stride in STRIDES)


def scrfd_output_roles(output_names: Sequence[str]) -> tuple[str, ...]:
    """For each graph output, the head it is (a name in SCRFD_OUTPUT_NAMES).

    Outputs named like SCRFD_OUTPUT_NAMES are matched by name; nine outputs with other names are taken in
    InsightFace's order. Raises ValueError for anything else.
    """
    names = tuple(output_names)
    if set(names) == set(SCRFD_OUTPUT_NAMES) and len(names) == len(SCRFD_OUTPUT_NAMES):
        return names
    if len(names) == len(SCRFD_OUTPUT_NAMES) and not set(names) & set(SCRFD_OUTPUT_NAMES):
        return SCRFD_OUTPUT_NAMES
    raise ValueError(
        f"an SCRFD detector has {len(SCRFD_OUTPUT_NAMES)} outputs ({', '.join(SCRFD_OUTPUT_NAMES)}, or nine unnamed "
        f"ones in that order); this graph has {len(names)}: {', '.join(names) or 'none'}"
    )


def decode_scrfd(
    outputs: Mapping[str, FloatArray], input_height: int, input_width: int, score_threshold: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Decode raw SCRFD outputs (keyed by SCRFD_OUTPUT_NAMES) for an input of input_height x input_width pixels.

    Returns (boxes (n, 4) as x1, y1, x2, y2; landmarks (n, 5, 2); scores (n,)) in input pixels, before NMS.
    """
    all_boxes: list[FloatArray] = []
    all_kps: list[FloatArray] = []
    all_scores: list[FloatArray] = []
    for stride in STRIDES:
        cols = input_width // stride
        anchors = (input_height // stride) * cols * ANCHORS_PER_CELL
        scores = outputs[f"score_{stride}"].reshape(-1)
        if scores.size != anchors:
            raise ValueError(
                f"stride {stride}: expected {anchors} anchors for a {input_height}x{input_width} input, "
                f"the model returned {scores.size} scores"
            )
        chosen = np.nonzero(scores >= score_threshold)[0]
        if chosen.size == 0:
            continue
        # Anchors are laid out row by row, cell by cell, the cell's anchors next to each other.
        cell = chosen // ANCHORS_PER_CELL
        centres = np.stack([cell % cols, cell // cols], axis=1).astype(np.float32) * stride
        distances = outputs[f"bbox_{stride}"].reshape(-1, 4)[chosen] * stride
        offsets = outputs[f"kps_{stride}"].reshape(-1, 5, 2)[chosen] * stride
        all_boxes.append(np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], axis=1))
        all_kps.append(offsets + centres[:, None, :])
        all_scores.append(scores[chosen])
    if not all_scores:
        return (np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float32))
    return (
        np.concatenate(all_boxes).astype(np.float32),
        np.concatenate(all_kps).astype(np.float32),
        np.concatenate(all_scores).astype(np.float32),
    )


class ScrfdDetector(GridDetector):
    """Finds faces in a BGR image: boxes, five landmarks in the core order (image-left eye first), scores.

    Same interface and image scaling as YuNetDetector: images are shrunk or enlarged to fit between min_side_px and
    max_side_px, run at their padded size, and the results mapped back to the caller's pixels.
    """

    def __init__(
        self,
        session: ModelSession,
        *,
        score_threshold: float,
        nms_iou: float,
        colour_order: str = "RGB",
        max_side_px: int = DEFAULT_MAX_DETECTION_SIDE_PX,
        min_side_px: int = DEFAULT_MIN_DETECTION_SIDE_PX,
    ) -> None:
        self._roles = scrfd_output_roles(session.output_names)
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
        outputs = dict(zip(self._roles, self._session.run(blob), strict=True))
        return decode_scrfd(outputs, padded_h, padded_w, self.score_threshold)


def _to_blob(bgr: npt.NDArray[np.uint8], *, swap_rb: bool) -> tuple[FloatArray, int, int]:
    height, width = bgr.shape[:2]
    padded_h = -(-height // INPUT_DIVISOR_PX) * INPUT_DIVISOR_PX
    padded_w = -(-width // INPUT_DIVISOR_PX) * INPUT_DIVISOR_PX
    # Black padding at the bottom and right (as InsightFace pads its 640x640 canvas), so coordinates need no offset.
    blob = np.full((1, 3, padded_h, padded_w), (0.0 - INPUT_MEAN) * INPUT_SCALE, dtype=np.float32)
    channels = bgr[:, :, ::-1] if swap_rb else bgr
    blob[0, :, :height, :width] = (channels.transpose(2, 0, 1).astype(np.float32) - INPUT_MEAN) * INPUT_SCALE
    return blob, padded_h, padded_w
