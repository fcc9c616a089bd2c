"""Rotated detection passes: turned copies and the exact way back. The real detector on real turned photos is in
tests/integration/test_vision_rotation_fallback.py; here synthetic images with known pixels."""

import cv2
import numpy as np
import pytest

from facetrace.core.types import BoundingBox, Detection
from facetrace.vision.detectors.rotation import RotationRobustDetector, map_back, rotate_expanded

WIDTH, HEIGHT = 160, 100
# Five dots (top-left pixel of each 3x3 dot), placed without symmetry so a wrong turn cannot map them onto each other.
DOTS = np.array([[20, 15], [70, 30], [120, 10], [40, 80], [140, 70]])


def _dotted() -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    for x, y in DOTS:
        image[y : y + 3, x : x + 3] = 255
    return image


def _dot_centres(image: np.ndarray) -> np.ndarray:
    """Centres of the bright blobs in edge coordinates (pixel (i, j) covers [i, i + 1)), weighted by brightness."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)
    count, labels = cv2.connectedComponents((grey > 20).astype(np.uint8))
    centres = []
    for label in range(1, count):
        ys, xs = np.nonzero(labels == label)
        weights = grey[ys, xs]
        centres.append([np.average(xs + 0.5, weights=weights), np.average(ys + 0.5, weights=weights)])
    return np.array(centres)


def _nearest(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return np.array([points[np.argmin(np.linalg.norm(points - t, axis=1))] for t in targets])


@pytest.mark.parametrize("degrees", [90.0, 180.0, 270.0, -90.0, 30.0, 45.0, -60.0, 137.0])
def test_landmarks_found_on_a_turned_copy_map_back_to_the_photo(degrees: float) -> None:
    turned, forward = rotate_expanded(_dotted(), degrees)
    truth = DOTS + 1.5  # the centre of each 3x3 dot
    found = _dot_centres(turned)
    assert len(found) == len(DOTS)
    # The matrix describes the copy: each dot is where it says, to interpolation's precision (exact on quarter turns).
    predicted = truth @ forward[:, :2].T + forward[:, 2]
    exact = degrees % 90 == 0
    np.testing.assert_allclose(_nearest(found, predicted), predicted, atol=1e-9 if exact else 0.15)
    detection = Detection(
        box=BoundingBox(0, 0, 10, 10), landmarks=_nearest(found, predicted).astype(np.float32), score=0.9
    )
    np.testing.assert_allclose(map_back(detection, forward).landmarks, truth, atol=1e-4 if exact else 0.15)


def test_quarter_turns_keep_the_canvas_and_map_boxes_exactly() -> None:
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[5:15, 10:30] = 255  # the box [10, 30) x [5, 15)
    for degrees in (90.0, 180.0, 270.0):
        turned, forward = rotate_expanded(image, degrees)
        assert turned.shape[:2] == ((WIDTH, HEIGHT) if degrees != 180.0 else (HEIGHT, WIDTH))
        ys, xs = np.nonzero(turned[:, :, 0])
        seen = BoundingBox(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        back = map_back(Detection(box=seen, landmarks=np.zeros((5, 2), np.float32), score=0.9), forward)
        assert back.box.as_tuple() == pytest.approx((10.0, 5.0, 30.0, 15.0), abs=1e-9)


def test_a_box_from_a_tilted_copy_keeps_the_face_size_and_centre() -> None:
    _, forward = rotate_expanded(_dotted(), 45.0)
    centre = np.array([80.0, 50.0]) @ forward[:, :2].T + forward[:, 2]
    box = BoundingBox(centre[0] - 20, centre[1] - 30, centre[0] + 20, centre[1] + 30)
    back = map_back(Detection(box=box, landmarks=np.zeros((5, 2), np.float32), score=0.9), forward).box
    assert ((back.x1 + back.x2) / 2, (back.y1 + back.y2) / 2) == pytest.approx((80.0, 50.0), abs=1e-6)
    assert (back.width, back.height) == pytest.approx((40.0, 60.0))
    _, sideways = rotate_expanded(_dotted(), 80.0)
    turned_box = map_back(Detection(box=box, landmarks=np.zeros((5, 2), np.float32), score=0.9), sideways).box
    assert (turned_box.width, turned_box.height) == pytest.approx((60.0, 40.0))


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="off, auto, always"):
        RotationRobustDetector(detector=None, mode="sometimes")  # type: ignore[arg-type]


class _ScriptedDetector:
    """The upright pass finds one face at 0.7 and one at 0.3; every turned pass finds one at 0.75 (shape-keyed)."""

    def __init__(self, upright_shape: tuple[int, ...]) -> None:
        self.upright_shape = upright_shape
        self.calls = 0

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        self.calls += 1
        level = np.array([[30, 40], [60, 40], [45, 55], [35, 70], [55, 70]], dtype=np.float32)
        if bgr.shape == self.upright_shape and self.calls == 1:
            return [
                Detection(box=BoundingBox(20, 20, 70, 80), landmarks=level, score=0.3),
                Detection(
                    box=BoundingBox(100, 10, 150, 70),
                    landmarks=level + np.array([80, -10], dtype=np.float32),
                    score=0.7,
                ),
            ]
        return [Detection(box=BoundingBox(20, 20, 70, 80), landmarks=level, score=0.75)]


@pytest.mark.parametrize("mode", ["off", "auto", "always"])
def test_what_scores_below_the_threshold_is_reported_apart_and_never_from_a_turned_pass(mode: str) -> None:
    image = _dotted()
    detector = _ScriptedDetector(image.shape)
    report = RotationRobustDetector(detector, mode, score_threshold=0.8).detect_report(image)
    assert report.detections == [] and report.fallback is False
    # Upright only, best score first: the analyzer's subject-face fallback picks from these.
    assert [d.score for d in report.below_threshold] == [0.7, 0.3]
    # No face at the threshold upright is what makes "auto" sweep; the turned views (0.75) count for nothing.
    assert len(report.passes) == (1 if mode == "off" else 8)
    found = RotationRobustDetector(_ScriptedDetector(image.shape), mode, score_threshold=0.6).detect_report(image)
    assert [d.score for d in found.detections] == [0.7] and [d.score for d in found.below_threshold] == [0.3]
