"""Landmark refinement without the network: the five-point rule, the region the mesh reads, and what the landmarks
option does without the installed model. The real model on real photos: tests/integration/
test_vision_face_mesh.py."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from facetrace.core.errors import ConfigError, ModelPackError
from facetrace.core.types import BoundingBox, Detection
from facetrace.vision.analyzer import OnnxFaceAnalyzer
from facetrace.vision.landmarks import face_mesh
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.packs import MODELS_SUBDIR, load_pack

# A frontal face in a 200 px box: eyes level, nose between them, mouth below.
FRONTAL = np.array([[70, 90], [130, 90], [100, 120], [75, 150], [125, 150]], dtype=np.float32)


def _detection(landmarks: np.ndarray, score: float = 0.93) -> Detection:
    return Detection(BoundingBox(0.0, 0.0, 200.0, 200.0), landmarks.astype(np.float32), score)


def test_five_points_are_eye_contour_means_nose_tip_and_mouth_corners() -> None:
    mesh = np.zeros((face_mesh.MESH_POINTS, 3), dtype=np.float32)
    mesh[list(face_mesh.RIGHT_EYE_CONTOUR), :2] = np.arange(32, dtype=np.float32).reshape(16, 2)
    mesh[list(face_mesh.LEFT_EYE_CONTOUR), :2] = 100 + np.arange(32, dtype=np.float32).reshape(16, 2)
    mesh[face_mesh.NOSE_TIP, :2] = (50, 60)
    mesh[face_mesh.MOUTH_RIGHT_CORNER, :2] = (40, 90)
    mesh[face_mesh.MOUTH_LEFT_CORNER, :2] = (70, 91)
    points = face_mesh.five_points(mesh)
    assert points.shape == (5, 2) and points.dtype == np.float32
    np.testing.assert_allclose(points[0], [15.0, 16.0])  # the means of 0, 2, ..., 30 and 1, 3, ..., 31
    np.testing.assert_allclose(points[1], [115.0, 116.0])
    np.testing.assert_allclose(points[2:], [[50, 60], [40, 90], [70, 91]])
    assert len(set(face_mesh.RIGHT_EYE_CONTOUR)) == len(set(face_mesh.LEFT_EYE_CONTOUR)) == 16


def test_turned_refines_turned_and_doubted_faces_refined_and_auto_every_face_detector_none() -> None:
    from facetrace.vision.quality import estimate_yaw_deg

    # The nose moved towards one eye: the face turned. Find a shift past auto's bound and one well inside it.
    def with_nose_at(x: float) -> np.ndarray:
        points = FRONTAL.copy()
        points[2, 0] = x
        return points

    turned = next(with_nose_at(100 + s) for s in range(30) if estimate_yaw_deg(with_nose_at(100 + s)) > 36)
    slightly = with_nose_at(103)
    assert abs(estimate_yaw_deg(slightly)) < 20
    confident = 0.8

    def wants(mode: str, points: np.ndarray, score: float = 0.93, fallback: bool = False) -> bool:
        return face_mesh.wants_refinement(mode, _detection(points, score), confident_score=confident, fallback=fallback)

    assert wants("turned", turned) and wants("turned", with_nose_at(200 - float(turned[2, 0])))  # either side
    assert not wants("turned", FRONTAL) and not wants("turned", slightly)
    assert wants("turned", FRONTAL, score=0.79)  # doubted: below the confident bound
    assert wants("turned", FRONTAL, fallback=True)  # doubted: kept by the subject-face fallback
    assert all(wants(mode, points) for mode in ("refined", "auto") for points in (FRONTAL, slightly, turned))
    assert not any(wants("detector", points, score=0.5, fallback=True) for points in (FRONTAL, turned))


def test_the_region_of_an_upright_face_is_the_box_grown_by_half() -> None:
    to_photo = face_mesh.mesh_region(_detection(FRONTAL))
    corners = np.array([[0, 0], [192, 192], [96, 96]], dtype=np.float64)
    mapped = corners @ to_photo[:, :2].T + to_photo[:, 2]
    np.testing.assert_allclose(mapped, [[-50, -50], [250, 250], [100, 100]], atol=1e-9)


def test_the_region_turns_with_the_mouth_to_eyes_axis() -> None:
    # The same face turned 90 degrees clockwise as displayed: its eyes are on the right, its mouth on the left.
    turned = np.stack([200 - FRONTAL[:, 1], FRONTAL[:, 0]], axis=1)
    to_photo = face_mesh.mesh_region(_detection(turned))
    # The input's "up" (towards row 0) points from the mouth to the eyes: to the image's right.
    up = to_photo[:, :2] @ np.array([0.0, -1.0])
    assert up[0] > 0 and abs(up[1]) < 1e-9
    assert math.isclose(float(np.hypot(*up)), 1.5 * 200 / 192)


def test_without_the_installed_model_auto_uses_the_detectors_points_and_refined_is_refused(tmp_path: Path) -> None:
    pack = load_pack()
    assert pack.landmarks is not None and pack.landmarks.licence.spdx == "Apache-2.0"
    for options in (AnalyzerOptions(landmarks="auto", data_dir=tmp_path), AnalyzerOptions(landmarks="auto")):
        analyzer = OnnxFaceAnalyzer(pack, options)
        assert analyzer.landmark_model is None and analyzer.landmarks_in_force == "detector"
    for mode in ("refined", "turned"):
        with pytest.raises(ConfigError, match=rf"landmarks={mode}: .*not installed.*install_face_mesh\.py"):
            OnnxFaceAnalyzer(pack, AnalyzerOptions(landmarks=mode, data_dir=tmp_path))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="landmarks must be one of detector, turned, refined, auto"):
        OnnxFaceAnalyzer(pack, AnalyzerOptions(landmarks="mesh"))  # type: ignore[arg-type]
    # A file of the pinned name is found (its sha256 is checked when the models load).
    (tmp_path / MODELS_SUBDIR).mkdir()
    (tmp_path / MODELS_SUBDIR / pack.landmarks.installed_file).write_bytes(b"not the model")
    refined = OnnxFaceAnalyzer(pack, AnalyzerOptions(landmarks="refined", data_dir=tmp_path))
    assert refined.landmarks_in_force == "refined"
    with pytest.raises(ModelPackError, match="expected sha256"):
        refined.warmup()
    assert OnnxFaceAnalyzer(pack, AnalyzerOptions(landmarks="detector", data_dir=tmp_path)).landmark_model is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"installed_file": "models/x.onnx"}, "installed_file must be a file name"),
        ({"sha256": "abc"}, "sha256 must be 64 hex digits"),
        ({"kind": "dlib-68"}, "'kind' must be one of mediapipe-face-mesh"),
        ({"licence": {"spdx": "MIT"}}, "missing key"),
    ],
)
def test_a_bad_landmarks_section_is_named(tmp_path: Path, change: dict[str, object], message: str) -> None:
    builtin = Path(load_pack().location)
    manifest = json.loads(builtin.read_text(encoding="utf-8"))
    manifest["landmarks"].update(change)
    manifest["id"] = "test-landmarks"
    manifest.pop("calibration")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelPackError, match=message):
        load_pack(str(tmp_path))
