"""YuNet detection with the real model on real photos (the `datasets` fixture of tests/conftest.py)."""

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrace.core.types import BoundingBox, Detection
from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.options import AnalyzerOptions

MIN_RECALL_AT_IOU_05 = 0.9


@pytest.fixture(scope="module")
def analyzer() -> Iterator[OnnxFaceAnalyzer]:
    yield open_analyzer(AnalyzerOptions(min_detection_score=None))


def _read(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes(), str(path))


def test_recall_on_dlib_annotated_faces(
    dlib_detection_recall: Callable[[Callable[[Path], Sequence[Detection]]], tuple[int, int]],
    analyzer: OnnxFaceAnalyzer,
) -> None:
    found, total = dlib_detection_recall(lambda path: analyzer.detect(_read(path)))
    assert total >= 40
    assert found / total >= MIN_RECALL_AT_IOU_05, f"recall {found}/{total}"


def test_same_detections_as_opencv_face_detector_yn(datasets: Path, analyzer: OnnxFaceAnalyzer) -> None:
    # The OpenCV reference reads the very file the pack verified (OpenCV runs the int8 graph itself).
    model_path = str(analyzer.pack.detector.model.source)
    images = [
        datasets / "dlib_faces_detection" / "images" / "2008_002470.jpg",
        datasets / "dlib_faces_detection" / "images" / "2007_007763.jpg",
        datasets / "face_recognition_examples" / "examples" / "two_people.jpg",
    ]
    for path in images:
        bgr = _read(path)
        height, width = bgr.shape[:2]
        assert 320 <= max(height, width) <= 1280  # no rescaling on our side, so outputs must match exactly
        reference = cv2.FaceDetectorYN.create(model_path, "", (width, height), analyzer.min_detection_score, 0.3, 5000)
        _, faces = reference.detect(bgr)
        ours = analyzer.detect(bgr)
        assert faces is not None and len(ours) == len(faces), path.name
        for row in faces:
            ref_box = BoundingBox(float(row[0]), float(row[1]), float(row[0] + row[2]), float(row[1] + row[3]))
            match = max(ours, key=lambda d, b=ref_box: d.box.iou(b))
            assert match.box.iou(ref_box) > 0.97, path.name
            assert match.score == pytest.approx(float(row[14]), abs=0.01)
            np.testing.assert_allclose(match.landmarks, row[4:14].reshape(5, 2), atol=1.0)


def test_landmarks_follow_the_core_order(datasets: Path, analyzer: OnnxFaceAnalyzer) -> None:
    bgr = _read(datasets / "face_recognition_examples" / "examples" / "obama-480p.jpg")
    (face,) = analyzer.detect(bgr)
    right_eye, left_eye, nose, right_mouth, left_mouth = face.landmarks
    assert right_eye[0] < nose[0] < left_eye[0]  # subject's right eye is on the image's left
    assert right_mouth[0] < left_mouth[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])


def test_dogs_are_not_confident_faces(datasets: Path, analyzer: OnnxFaceAnalyzer) -> None:
    # YuNet (in OpenCV too) scores the two front-facing dog faces 0.65 and 0.77: above YuNet's own default threshold
    # of 0.6, below the 0.8 bound under which a face is flagged low_detection_score. At 0.6 no unflagged face may come
    # out; the pack's threshold is 0.8 (tests/integration/test_vision_detection_thresholds.py).
    path = datasets / "dlib_faces_detection" / "images" / "dogs.jpg"
    result = open_analyzer(AnalyzerOptions(min_detection_score=0.6)).analyze(path.read_bytes(), str(path))
    dogs = [face for face in result.faces if face.detection.box.width > 150]
    assert len(dogs) == 2 and all("low_detection_score" in face.quality.flags for face in dogs)
    strict = open_analyzer(AnalyzerOptions(min_detection_score=0.8, rotation_fallback="off"))
    assert strict.analyze(path.read_bytes(), str(path)).faces == ()
    # With the rotation fallback (the default) the only confident face is a real one: a woman's face turned sideways
    # on a poster behind the dogs, about 50 px, found on a turned copy. Levelled dog faces score 0.83-0.86, below
    # what a turned view needs (detectors/rotation.py, MIN_TURNED_VIEW_SCORE).
    turned = open_analyzer(AnalyzerOptions(min_detection_score=0.8)).analyze(path.read_bytes(), str(path)).faces
    assert [face.detection.box.width < 80 and face.detection.box.x2 < 150 for face in turned] == [True]


def test_group_photos_give_every_face(datasets: Path, analyzer: OnnxFaceAnalyzer) -> None:
    group = datasets / "group_photos" / "insightface_t1.jpg"
    assert len(analyzer.detect(_read(group))) == 6
    selfie = datasets / "deepface_testset" / "images" / "selfie-many-people.jpg"
    assert len(analyzer.detect(_read(selfie))) >= 5


def test_large_photo_is_detected_at_full_resolution_coordinates(datasets: Path, analyzer: OnnxFaceAnalyzer) -> None:
    small = analyzer.detect(_read(datasets / "face_recognition_examples" / "examples" / "obama-480p.jpg"))[0]
    large = analyzer.detect(_read(datasets / "face_recognition_examples" / "examples" / "obama-1080p.jpg"))[0]
    scale = 1080 / 480
    expected = BoundingBox(small.box.x1 * scale, small.box.y1 * scale, small.box.x2 * scale, small.box.y2 * scale)
    assert large.box.iou(expected) > 0.85
