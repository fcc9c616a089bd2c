"""Landmark refinement: MediaPipe's 468-point face mesh, run on the detector's face, reduced to the five points that
place a face on the embedder's template.

The detector's five points are weakest on faces turned far from the camera, where the alignment matters most. The
mesh network (MediaPipe's face_landmark.tflite, Apache-2.0, converted to ONNX at install time by
scripts/install_face_mesh.py; vision/landmarks/tflite_onnx.py) reads a square region 1.5 times the detector's box,
turned so that the detector's mouth-to-eyes axis points up, as MediaPipe crops it from its own detector's keypoints.
Its points are reduced to the template's five by a rule chosen on LFW by agreement with the detector on near-frontal
faces (never on a benchmark's test pairs): each eye is the mean of its 16 contour points, the nose tip is mesh point 1,
the mouth corners are points 61 and 291. See docs/decisions/0005-turned-face-landmarks.md.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.core.types import Detection
from facetrace.vision.quality import estimate_yaw_deg
from facetrace.vision.sessions import ModelSession

BgrImage = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

# detector: the detector's points align every face; refined: the mesh's align every face, and its model must be
# installed; turned: the mesh's align only the faces whose detector points are least trusted (turned beyond
# TURNED_YAW_DEG, or doubted by the detector), and its model must be installed; auto: refined when the model is
# installed, else detector. Measured on LFW (docs/accuracy.md "Turned faces"): refining every face gave the best
# identification (open-set FNIR at FPIR 1% 8.0% -> 4.35%, turned: 6.0%) and degraded-photo results (docs/robustness.md),
# so auto refines every face; turned costs an eighth as much and matches turned faces as well.
LANDMARK_MODES = ("detector", "turned", "refined", "auto")
# The turned mode's yaw bound, by the quality module's estimate from the detector's points: of 15, 25, 35 and 45
# degrees (bench/turned_faces.py), 35 did best on LFW's turned pairs while refining 12% of the photos.
TURNED_YAW_DEG = 35.0

INPUT_SIZE_PX = 192  # the network's square input
# The faster runtime for the converted mesh (runtime "auto"): OpenCV's dnn ran it in 2.0 ms, ONNX Runtime in 4.3 ms
# (fastest of 200 runs each, one thread, same input; outputs within 2e-4 px of each other).
PREFERRED_RUNTIME = "opencv"
MESH_POINTS = 468
# The region read: this many times the detector box's longer side, centred on the box (MediaPipe's own scale).
REGION_SCALE = 1.5
# MediaPipe's face mesh topology (FACEMESH_RIGHT_EYE / FACEMESH_LEFT_EYE): the 16 points of each eye's contour, the
# subject's right eye first (the template's first point, on the image's left in a frontal photo).
RIGHT_EYE_CONTOUR = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
LEFT_EYE_CONTOUR = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
NOSE_TIP = 1
MOUTH_RIGHT_CORNER = 61
MOUTH_LEFT_CORNER = 291


def wants_refinement(mode: str, detection: Detection, *, confident_score: float, fallback: bool) -> bool:
    """Whether the landmarks mode aligns this face on the mesh's points (when the mesh model is in use): refined and
    auto every face; turned a face turned beyond TURNED_YAW_DEG, scored below the pack's confident bound, or kept by
    the subject-face fallback; detector none."""
    if mode != "turned":
        return mode in ("refined", "auto")
    turned = abs(estimate_yaw_deg(np.asarray(detection.landmarks, dtype=np.float64))) > TURNED_YAW_DEG
    return turned or fallback or detection.score < confident_score


def five_points(mesh: FloatArray) -> FloatArray:
    """The template's five points, in core order, from the mesh's (468, 2+) points."""
    points = np.asarray(mesh, dtype=np.float64)[:, :2]
    return np.stack(
        [
            points[list(RIGHT_EYE_CONTOUR)].mean(axis=0),
            points[list(LEFT_EYE_CONTOUR)].mean(axis=0),
            points[NOSE_TIP],
            points[MOUTH_RIGHT_CORNER],
            points[MOUTH_LEFT_CORNER],
        ]
    ).astype(np.float32)


def mesh_region(detection: Detection) -> npt.NDArray[np.float64]:
    """The 2x3 affine taking the network's input coordinates (0..192, edges) to the photo's: a square of REGION_SCALE
    times the box's longer side around its centre, turned so that the detector's mouth-to-eyes axis points up."""
    box = detection.box
    points = np.asarray(detection.landmarks, dtype=np.float64)
    up = points[:2].mean(axis=0) - points[3:].mean(axis=0)  # mouth centre -> eye centre
    length = float(np.hypot(*up))
    sin, cos = (up[0] / length, -up[1] / length) if length > 1e-6 else (0.0, 1.0)
    scale = REGION_SCALE * max(box.width, box.height) / INPUT_SIZE_PX
    linear = scale * np.array([[cos, -sin], [sin, cos]])
    centre = np.array([(box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2])
    shift = centre - linear @ np.full(2, INPUT_SIZE_PX / 2)
    return np.hstack([linear, shift[:, None]])


class FaceMeshRefiner:
    """Detections in, the same detections with their five landmarks taken from the face mesh out."""

    def __init__(self, session: ModelSession) -> None:
        self._session = session

    def refine(self, bgr: BgrImage, detection: Detection) -> Detection:
        to_photo = mesh_region(detection)
        mesh = self.mesh(bgr, to_photo)
        return Detection(box=detection.box, landmarks=five_points(mesh), score=detection.score)

    def mesh(self, bgr: BgrImage, to_photo: npt.NDArray[np.float64]) -> FloatArray:
        """The 468 mesh points (x, y) in the photo's pixels, for the region to_photo describes."""
        # warpAffine samples at pixel centres: the same map in index coordinates is shifted by half a pixel.
        sampling = to_photo.copy()
        sampling[:, 2] += to_photo[:, :2] @ np.array([0.5, 0.5]) - 0.5
        crop = cv2.warpAffine(
            bgr,
            sampling,
            (INPUT_SIZE_PX, INPUT_SIZE_PX),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        rgb = np.ascontiguousarray(crop[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32)[None] / 255.0
        outputs = self._session.run(rgb)
        points = np.asarray(outputs[0], dtype=np.float64).reshape(MESH_POINTS, 3)[:, :2]
        mapped = points @ to_photo[:, :2].T + to_photo[:, 2]
        return mapped.astype(np.float32)
