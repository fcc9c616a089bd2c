"""Each pack's own detection threshold and the subject-face fallback, with the real YuNet and SFace on real photos.

The default pack's threshold (0.8) and floor (0.65) were chosen with bench/detection_thresholds.py (docs/models.md):
YuNet scores the two dogs of dlib's dogs.jpg 0.65 and 0.78 upright; two one-person portraits of the deepface set,
each a face filling a large photo, score 0.74 (img24.jpg) and 0.80 (img32.jpg, just under).
"""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.packs import DEFAULT_PACK_ID, load_pack

# The default pack's similarity at a false-match rate of 1e-3 on LFW (its calibration.json).
SIMILARITY_AT_FMR_1E3 = 0.367


@pytest.fixture(scope="module")
def analyzer() -> Iterator[OnnxFaceAnalyzer]:
    yield open_analyzer(AnalyzerOptions())


@pytest.fixture(scope="module")
def upright_only() -> Iterator[OnnxFaceAnalyzer]:
    yield open_analyzer(AnalyzerOptions(rotation_fallback="off"))


def _dogs(datasets: Path) -> Path:
    return datasets / "dlib_faces_detection" / "images" / "dogs.jpg"


def _pack_with_threshold(folder: Path, threshold: float) -> Path:
    """A pack of the default pack's models whose manifest sets another detection threshold (and no floor)."""
    default = json.loads((Path(load_pack(None).location)).read_text())
    folder.mkdir(parents=True)
    manifest = {
        **{key: default[key] for key in ("format", "name", "version", "licence", "commercial_use", "embedder")},
        "id": "sface-2021dec-int8bq+yunet-threshold-test",
        "detector": {"builtin": "yunet", "score_threshold": threshold},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_the_packs_threshold_decides_what_is_detected(
    datasets: Path, tmp_path: Path, upright_only: OnnxFaceAnalyzer
) -> None:
    dogs = _dogs(datasets)
    assert upright_only.min_detection_score == load_pack(None).detector.score_threshold == 0.8
    assert upright_only.analyze(dogs.read_bytes(), str(dogs)).faces == ()
    # The same models under a manifest that says 0.6 (YuNet's own default): both dogs are faces, flagged as doubtful.
    lenient = open_analyzer(
        AnalyzerOptions(pack=str(_pack_with_threshold(tmp_path / "p", 0.6)), rotation_fallback="off")
    )
    assert (lenient.min_detection_score, lenient.fallback_score) == (0.6, None)
    faces = lenient.analyze(dogs.read_bytes(), str(dogs)).faces
    assert sorted(round(f.detection.score, 2) for f in faces) == [0.65, 0.77]
    assert all("low_detection_score" in f.quality.flags for f in faces)


def test_the_setting_overrides_the_packs_threshold(datasets: Path) -> None:
    dogs = _dogs(datasets)
    low = open_analyzer(AnalyzerOptions(min_detection_score=0.6, rotation_fallback="off"))
    assert low.fallback_score is None  # an override at or below the floor leaves the floor nothing to do
    assert len(low.analyze(dogs.read_bytes(), str(dogs)).faces) == 2
    # Above the scores of a clear face: the face is no longer one at the threshold, and the fallback keeps it alone,
    # flagged, even though its score is above the pack's confident bound (0.8).
    obama = datasets / "face_recognition_examples" / "examples" / "obama-480p.jpg"
    strict = open_analyzer(AnalyzerOptions(min_detection_score=0.99, rotation_fallback="off"))
    (face,) = strict.analyze(obama.read_bytes(), str(obama)).faces
    assert 0.8 < face.detection.score < 0.99 and "low_detection_score" in face.quality.flags
    off = open_analyzer(AnalyzerOptions(min_detection_score=0.99, rotation_fallback="off", subject_fallback=False))
    assert off.analyze(obama.read_bytes(), str(obama)).faces == ()


@pytest.mark.parametrize(("photo", "same_person"), [("img24.jpg", "img25.jpg"), ("img32.jpg", "img33.jpg")])
def test_a_photo_whose_face_scores_between_floor_and_threshold_keeps_that_face_flagged(
    datasets: Path, analyzer: OnnxFaceAnalyzer, photo: str, same_person: str
) -> None:
    images = datasets / "deepface_testset" / "images"
    path = images / photo
    report = analyzer.detect_report(decode_image(path.read_bytes(), str(path)))
    assert report.fallback and len(report.detections) == 1
    assert analyzer.fallback_score is not None
    assert analyzer.fallback_score <= report.detections[0].score < analyzer.min_detection_score
    (face,) = analyzer.analyze(path.read_bytes(), str(path)).faces
    assert "low_detection_score" in face.quality.flags and face.quality.is_weak
    # It is the subject's face: it matches another photo of the same person.
    other = images / same_person
    (reference,) = analyzer.analyze(other.read_bytes(), str(other)).faces
    assert float(np.dot(face.embedding.vector, reference.embedding.vector)) >= SIMILARITY_AT_FMR_1E3
    without = open_analyzer(AnalyzerOptions(subject_fallback=False))
    assert without.analyze(path.read_bytes(), str(path)).faces == ()


def test_dogs_still_yield_no_face(datasets: Path, analyzer: OnnxFaceAnalyzer, upright_only: OnnxFaceAnalyzer) -> None:
    dogs = _dogs(datasets)
    report = upright_only.detect_report(decode_image(dogs.read_bytes(), str(dogs)))
    # Both dog faces score above the floor; the fallback refuses them because no eyes show where a face's would.
    assert upright_only.fallback_score is not None
    assert sum(d.score >= upright_only.fallback_score for d in report.below_threshold) == 2
    assert report.detections == [] and not report.fallback
    assert upright_only.analyze(dogs.read_bytes(), str(dogs)).faces == ()
    # With the rotation fallback (the default) the only face is the real one on the poster behind the dogs, turned
    # sideways and about 50 px wide, found on a turned copy (tests/integration/test_vision_detection.py).
    faces = analyzer.analyze(dogs.read_bytes(), str(dogs)).faces
    assert [(f.detection.box.width < 80, "low_detection_score" in f.quality.flags) for f in faces] == [(True, False)]


def test_a_photo_with_faces_at_the_threshold_gets_nothing_from_the_fallback(
    datasets: Path, analyzer: OnnxFaceAnalyzer
) -> None:
    without = open_analyzer(AnalyzerOptions(subject_fallback=False))
    for path in (
        datasets / "face_recognition_examples" / "examples" / "two_people.jpg",
        datasets / "group_photos" / "insightface_t1.jpg",
    ):
        bgr = decode_image(path.read_bytes(), str(path))
        with_fallback = analyzer.detect_report(bgr)
        assert not with_fallback.fallback
        assert [d.box for d in with_fallback.detections] == [d.box for d in without.detect(bgr)]
    assert analyzer.pack.id == DEFAULT_PACK_ID
