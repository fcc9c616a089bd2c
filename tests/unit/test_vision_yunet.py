"""YuNet decoding on hand-made network outputs (no model needed)."""

import math

import numpy as np
import pytest

from facetrace.vision.detectors.yunet import (
    STRIDES,
    YUNET_OUTPUT_NAMES,
    YuNetDetector,
    decode_yunet,
    detection_scale,
)


def _empty_outputs(height: int, width: int) -> dict[str, np.ndarray]:
    outputs: dict[str, np.ndarray] = {}
    for stride in STRIDES:
        cells = (height // stride) * (width // stride)
        outputs[f"cls_{stride}"] = np.zeros((1, cells, 1), np.float32)
        outputs[f"obj_{stride}"] = np.zeros((1, cells, 1), np.float32)
        outputs[f"bbox_{stride}"] = np.zeros((1, cells, 4), np.float32)
        outputs[f"kps_{stride}"] = np.zeros((1, cells, 10), np.float32)
    return outputs


def _put_face(
    outputs: dict[str, np.ndarray], width: int, stride: int, row: int, col: int, cls: float, obj: float
) -> None:
    index = row * (width // stride) + col
    outputs[f"cls_{stride}"][0, index, 0] = cls
    outputs[f"obj_{stride}"][0, index, 0] = obj
    outputs[f"bbox_{stride}"][0, index] = [0.5, 0.25, math.log(3.0), math.log(4.0)]
    outputs[f"kps_{stride}"][0, index] = [-0.5, -0.5, 0.5, -0.5, 0.0, 0.0, -0.4, 0.6, 0.4, 0.6]


def test_decode_follows_the_yunet_formulas() -> None:
    outputs = _empty_outputs(64, 96)
    _put_face(outputs, 96, stride=16, row=2, col=3, cls=0.81, obj=1.0)
    boxes, landmarks, scores = decode_yunet(outputs, 64, 96, score_threshold=0.5)
    assert scores.tolist() == pytest.approx([0.9])  # sqrt(cls * obj)
    cx, cy, w, h = (3 + 0.5) * 16, (2 + 0.25) * 16, 3.0 * 16, 4.0 * 16
    np.testing.assert_allclose(boxes[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-5)
    np.testing.assert_allclose(landmarks[0, 0], [(3 - 0.5) * 16, (2 - 0.5) * 16])
    np.testing.assert_allclose(landmarks[0, 2], [3 * 16, 2 * 16])


def test_decode_drops_low_scores() -> None:
    outputs = _empty_outputs(32, 32)
    _put_face(outputs, 32, stride=8, row=1, col=1, cls=0.3, obj=0.3)
    boxes, _, scores = decode_yunet(outputs, 32, 32, score_threshold=0.5)
    assert boxes.shape == (0, 4) and scores.shape == (0,)


class _FakeSession:
    """Returns fixed outputs for whatever padded size it is given, recording the input shape."""

    runtime = "fake"
    input_name = "input"
    output_names = YUNET_OUTPUT_NAMES

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self.shapes.append(x.shape)
        height, width = x.shape[2], x.shape[3]
        outputs = _empty_outputs(height, width)
        _put_face(outputs, width, stride=16, row=2, col=3, cls=1.0, obj=1.0)
        _put_face(outputs, width, stride=16, row=2, col=4, cls=0.8, obj=0.8)  # overlaps the first: suppressed
        return [outputs[name] for name in YUNET_OUTPUT_NAMES]


def test_detector_pads_scales_and_maps_back() -> None:
    session = _FakeSession()
    detector = YuNetDetector(session, score_threshold=0.5, nms_iou=0.3, max_side_px=500, min_side_px=100)
    image = np.zeros((300, 1000, 3), np.uint8)  # shrunk by 2 to 500 x 150, padded to 512 x 160
    detections = detector.detect(image)
    assert session.shapes == [(1, 3, 160, 512)]
    assert len(detections) == 1
    box = detections[0].box
    # (3.5 * 16 - 24, 2.25 * 16 - 32) in the shrunk image, doubled back.
    assert box.x1 == pytest.approx(64.0, abs=0.5) and box.y1 == pytest.approx(8.0, abs=0.5)
    assert box.x2 == pytest.approx(160.0, abs=0.5) and box.y2 == pytest.approx(136.0, abs=0.5)
    assert detections[0].landmarks.shape == (5, 2)


def test_detection_scale_shrinks_large_and_enlarges_small_images() -> None:
    assert detection_scale(2560, 1440, 1280, 320) == 0.5
    assert detection_scale(800, 600, 1280, 320) == 1.0
    assert detection_scale(160, 100, 1280, 320) == 2.0
    assert detection_scale(20, 20, 1280, 320) == 4.0  # enlargement is capped
