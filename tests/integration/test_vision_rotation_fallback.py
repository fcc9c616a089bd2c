"""Rotation fallback with the default (freely licensed) pack on real LFW photos: faces turned 60 degrees and upside
down still match their upright selves, and upright photos pay for one detection pass only.

bench/rotation_robustness.py measures the same on 200 photos and 9 angles (docs/accuracy.md, "Rotation").
"""

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrace.core.types import Detection
from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.packs import load_pack

# The default pack's similarity at a false-match rate of 1e-3 on LFW (its calibration.json).
SIMILARITY_AT_FMR_1E3 = 0.367
# The service's minimum detection score (Settings.min_detection_score).
SERVICE_MIN_DETECTION_SCORE = 0.8
PHOTOS = 20


@pytest.fixture(scope="module")
def photos(lfw: Path) -> list[np.ndarray]:
    """The first photo of every k-th identity: 20 different people."""
    first: dict[str, str] = {}
    with (lfw / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            first.setdefault(row["identity"], row["path"])
    names = sorted(first)[:: len(first) // PHOTOS][:PHOTOS]
    return [decode_image((lfw / first[name]).read_bytes(), name) for name in names]


@pytest.fixture(scope="module")
def analyzer() -> Iterator[OnnxFaceAnalyzer]:
    yield open_analyzer(AnalyzerOptions(min_detection_score=SERVICE_MIN_DETECTION_SCORE))


def _turned(bgr: np.ndarray, degrees: float) -> np.ndarray:
    """Turned about its centre on a canvas large enough to keep every pixel."""
    height, width = bgr.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[0, 2] += new_width / 2 - width / 2
    matrix[1, 2] += new_height / 2 - height / 2
    return np.asarray(cv2.warpAffine(bgr, matrix, (new_width, new_height)), dtype=np.uint8)


def _main_vector(analyzer: OnnxFaceAnalyzer, bgr: np.ndarray) -> np.ndarray | None:
    faces = analyzer.analyze_array(bgr, "photo").faces
    if not faces:
        return None
    height, width = bgr.shape[:2]

    def distance(detection: Detection) -> float:
        box = detection.box
        return float(np.hypot((box.x1 + box.x2) / 2 - width / 2, (box.y1 + box.y2) / 2 - height / 2))

    return min(faces, key=lambda face: distance(face.detection)).embedding.vector


def _matched(analyzer: OnnxFaceAnalyzer, photos: list[np.ndarray], degrees: float) -> int:
    matched = 0
    for bgr in photos:
        upright = _main_vector(analyzer, bgr)
        assert upright is not None
        turned = _main_vector(analyzer, _turned(bgr, degrees))
        matched += turned is not None and float(upright @ turned) >= SIMILARITY_AT_FMR_1E3
    return matched


def test_upright_photos_run_one_detection_pass(analyzer: OnnxFaceAnalyzer, photos: list[np.ndarray]) -> None:
    assert analyzer.options.rotation_fallback == "auto"
    for bgr in photos:
        report = analyzer.detect_report(bgr)
        assert report.detections and report.passes == (0.0,)


@pytest.mark.parametrize("degrees", [60.0, 180.0])
def test_turned_faces_match_their_upright_selves(
    analyzer: OnnxFaceAnalyzer, photos: list[np.ndarray], degrees: float
) -> None:
    # Measured on 200 photos with the fallback: 100% at 60 degrees, 96% at 180; with it off 0% (docs/accuracy.md).
    matched = _matched(analyzer, photos, degrees)
    assert matched >= 0.95 * len(photos), f"{matched}/{len(photos)} at {degrees} degrees"


def test_without_the_fallback_upside_down_faces_do_not_match(photos: list[np.ndarray]) -> None:
    off = open_analyzer(AnalyzerOptions(min_detection_score=SERVICE_MIN_DETECTION_SCORE, rotation_fallback="off"))
    assert _matched(off, photos[:10], 180.0) <= 1
    assert off.detect_report(_turned(photos[0], 180.0)).passes == (0.0,)


def test_the_packs_confident_detection_score_sets_the_low_score_flag(
    analyzer: OnnxFaceAnalyzer, fr_examples: Path
) -> None:
    path = fr_examples / "examples" / "obama-480p.jpg"
    (face,) = analyzer.analyze(path.read_bytes(), str(path)).faces
    assert "low_detection_score" not in face.quality.flags and face.detection.score < 0.99
    pack = load_pack(None)
    strict = dataclasses.replace(pack, detector=dataclasses.replace(pack.detector, confident_detection_score=0.99))
    (flagged,) = (
        OnnxFaceAnalyzer(strict, AnalyzerOptions(min_detection_score=None)).analyze(path.read_bytes(), str(path)).faces
    )
    assert "low_detection_score" in flagged.quality.flags
