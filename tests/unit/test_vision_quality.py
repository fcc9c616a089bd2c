import math

import cv2
import numpy as np
import pytest

from facetrace.core.types import BoundingBox, Detection
from facetrace.vision import quality
from facetrace.vision.geometry import ARCFACE_TEMPLATE_112


def _detection(landmarks: np.ndarray, size: float = 200.0, score: float = 0.93) -> Detection:
    return Detection(BoundingBox(0.0, 0.0, size, size), landmarks.astype(np.float32), score)


def _sharp_crop() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)


def test_frontal_large_sharp_confident_face_has_no_flags() -> None:
    result = quality.assess_quality(_detection(ARCFACE_TEMPLATE_112 * 2), _sharp_crop())
    assert result.flags == ()
    assert result.score > 0.9
    assert abs(result.yaw_deg) < 5 and abs(result.roll_deg) < 1


def test_roll_is_the_eye_line_angle() -> None:
    angle = math.radians(40)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = (ARCFACE_TEMPLATE_112 - 56) @ rotation.T * 2 + 200
    result = quality.assess_quality(_detection(points), _sharp_crop())
    assert result.roll_deg == pytest.approx(40.0, abs=0.5)
    assert "rotated" in result.flags


def test_nose_near_one_eye_is_a_profile() -> None:
    points = ARCFACE_TEMPLATE_112.copy() * 2
    points[2, 0] = points[1, 0]  # nose tip under the left eye: the head is turned far to the image's right
    result = quality.assess_quality(_detection(points), _sharp_crop())
    assert result.yaw_deg > quality.MAX_FRONTAL_YAW_DEG
    assert "profile" in result.flags


def test_small_blurry_and_doubtful_faces_are_flagged() -> None:
    blurred = cv2.GaussianBlur(_sharp_crop(), (0, 0), 4)
    result = quality.assess_quality(_detection(ARCFACE_TEMPLATE_112 / 4, size=28.0, score=0.62), blurred)
    assert set(result.flags) == {"small", "blurry", "low_detection_score"}
    assert result.is_weak
    assert 0.0 <= result.score < 0.5


def test_sharpness_falls_with_blur() -> None:
    crop = _sharp_crop()
    values = [quality.normalised_sharpness(cv2.GaussianBlur(crop, (0, 0), s)) for s in (0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= v < 1.0 for v in values)
