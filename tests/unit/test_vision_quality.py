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
    """A face-like aligned crop: sharp 6 px texture (no flat block, no pixel noise) and dark eyes at the template."""
    y, x = np.mgrid[0:112, 0:112]
    grey = 150 + 40 * (((x // 6) + (y // 6)) % 2 * 2 - 1)
    crop = np.repeat(grey[:, :, None], 3, axis=2).astype(np.uint8)
    for px, py in ARCFACE_TEMPLATE_112[:2]:
        cv2.circle(crop, (round(float(px)), round(float(py))), 6, (30, 30, 30), -1)
    return crop


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
    # A sigma-4 blur also flattens the texture into blocks without detail, which reads as an occlusion as well.
    assert (
        {"small", "blurry", "low_detection_score"}
        <= set(result.flags)
        <= {
            "small",
            "blurry",
            "low_detection_score",
            "occluded",
        }
    )
    assert result.is_weak
    assert 0.0 <= result.score < 0.5


def test_a_face_kept_below_the_detection_threshold_is_flagged_whatever_its_score() -> None:
    # The subject-face fallback keeps a face under the threshold in force, which may sit above the pack's confident
    # bound when a user raised min_detection_score: it is still a face the detector doubted.
    crop = _sharp_crop()
    kept = quality.assess_quality(_detection(ARCFACE_TEMPLATE_112 * 2, score=0.85), crop, 0.8, below_threshold=True)
    assert kept.flags == ("low_detection_score",) and kept.is_weak
    assert quality.assess_quality(_detection(ARCFACE_TEMPLATE_112 * 2, score=0.85), crop, 0.8).flags == ()


def test_eyes_visible_is_the_eyes_not_visible_flags_test() -> None:
    crop = _sharp_crop()
    assert quality.eyes_visible(crop) and "eyes_not_visible" not in quality.appearance_flags(crop)
    painted = crop.copy()
    for px, py in ARCFACE_TEMPLATE_112[:2]:
        cv2.circle(painted, (round(float(px)), round(float(py))), 8, (200, 200, 200), -1)
    assert not quality.eyes_visible(painted) and "eyes_not_visible" in quality.appearance_flags(painted)


def test_sharpness_falls_with_blur() -> None:
    crop = _sharp_crop()
    values = [quality.normalised_sharpness(cv2.GaussianBlur(crop, (0, 0), s)) for s in (0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= v < 1.0 for v in values)


def test_a_bar_over_the_eyes_or_a_mask_over_the_mouth_is_an_occlusion() -> None:
    face = _detection(ARCFACE_TEMPLATE_112 * 2)
    barred = _sharp_crop()
    barred[42:62, 20:92] = 40
    masked = _sharp_crop()
    masked[78:110, 28:84] = 90
    assert quality.assess_quality(face, barred).flags == ("occluded",)
    assert "occluded" in quality.assess_quality(face, masked).flags


def test_eyes_as_light_as_the_cheeks_are_not_visible() -> None:
    painted = _sharp_crop()
    for px, py in ARCFACE_TEMPLATE_112[:2]:
        cv2.circle(painted, (round(float(px)), round(float(py))), 7, (150, 150, 150), -1)
    assert quality.eye_darkness(quality._grey_112(painted)) < quality.MIN_EYE_DARKNESS
    assert quality.assess_quality(_detection(ARCFACE_TEMPLATE_112 * 2), painted).flags == ("eyes_not_visible",)


def test_pixel_noise_is_flagged_and_a_crop_of_another_size_is_measured_at_112() -> None:
    rng = np.random.default_rng(1)
    noisy = np.clip(_sharp_crop() + rng.normal(0, 30, (112, 112, 3)), 0, 255).astype(np.uint8)
    assert quality.noise_residual(quality._grey_112(noisy)) >= quality.MAX_NOISE_RESIDUAL
    assert "noisy" in quality.assess_quality(_detection(ARCFACE_TEMPLATE_112 * 2), noisy).flags
    large = cv2.resize(_sharp_crop(), (224, 224), interpolation=cv2.INTER_NEAREST)
    assert quality.appearance_flags(large) == []
