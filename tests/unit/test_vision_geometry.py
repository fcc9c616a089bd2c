import math

import numpy as np
import pytest

from facetrace.vision.geometry import (
    ARCFACE_TEMPLATE_112,
    apply_transform,
    arcface_template,
    estimate_similarity_transform,
    nms,
)


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array(
        [[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]],
        dtype=np.float64,
    )


def test_umeyama_recovers_a_known_similarity_transform() -> None:
    truth = _similarity(23.0, 1.7, 40.0, -12.5)
    source = np.array([[10, 20], [50, 18], [31, 40], [14, 61], [48, 60]], dtype=np.float32)
    target = apply_transform(truth, source)
    estimated = estimate_similarity_transform(source, target)
    np.testing.assert_allclose(estimated, truth, atol=1e-4)


def test_umeyama_never_mirrors_the_face() -> None:
    # Target points are a mirror image of the source: the best similarity is a rotation, never a reflection.
    source = ARCFACE_TEMPLATE_112.copy()
    target = source.copy()
    target[:, 0] = 112 - target[:, 0]
    matrix = estimate_similarity_transform(source, target)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_umeyama_refuses_degenerate_points() -> None:
    with pytest.raises(ValueError, match="one place"):
        estimate_similarity_transform(np.ones((5, 2), np.float32), ARCFACE_TEMPLATE_112)


def test_template_follows_the_core_landmark_order() -> None:
    right_eye, left_eye, nose, right_mouth, left_mouth = ARCFACE_TEMPLATE_112
    assert right_eye[0] < left_eye[0]  # subject's right eye is on the image's left
    assert right_mouth[0] < left_mouth[0]
    assert right_eye[1] < nose[1] < right_mouth[1]
    np.testing.assert_allclose(arcface_template(224, 224), ARCFACE_TEMPLATE_112 * 2)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.6], dtype=np.float32)
    keep = nms(boxes, scores, iou_threshold=0.3)
    assert keep.tolist() == [1, 2]
    assert nms(boxes, scores, iou_threshold=0.3, max_keep=1).tolist() == [1]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3).size == 0
