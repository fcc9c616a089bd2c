"""Rotation-robust detection: run a detector on rotated copies of a photo and map what it finds back.

The default pack's YuNet was trained on upright faces: tilted 45 degrees in plane a face is still found but its
landmarks follow the upright template (the eye line it reports is tilted about 20 degrees, not 45), so the aligned
crop stays tilted and matches its upright self in a third of LFW photos (66 of 200); upside down it is found with a
confident score and landmarks that put the eyes on the mouth. A copy of the photo turned so that the face is upright
again gives good landmarks, and the most upright view of a face is also the one the detector is surest of. So:

1. the upright pass runs as always;
2. a sweep runs the detector on copies turned by SWEEP_ANGLES_DEG (every 45 degrees), when the mode asks for it;
3. each face is then detected once more on a copy de-rotated by the roll its landmarks show in its best view
   (at most 22.5 degrees off after the sweep), which puts its eye line level for alignment;
4. every view's detections are mapped back to the photo's pixels (the exact inverse affine) and merged by NMS,
   the best-scoring view of each face winning; a turned view must score at least MIN_TURNED_VIEW_SCORE.

When to sweep is the mode: "off" never, "always" on every photo, "auto" when the upright pass looks unsure
(no face, a best score below SUSPECT_SCORE, or a face tilted beyond SUSPECT_ROLL_DEG); in "auto" a face tilted
between TILTED_ROLL_DEG and that gets only the one 45-degree turn its way. A face is what scores the wrapper's
score_threshold; the wrapped detector may run lower (down to the analyzer's subject-face fallback floor), and what
it finds below the threshold upright is only reported (DetectionReport.below_threshold), never swept for. See
docs/accuracy.md ("Rotation") for the measurements behind the bounds and the cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.core.types import BoundingBox, Detection
from facetrace.vision.geometry import nms

BgrImage = npt.NDArray[np.uint8]
Affine = npt.NDArray[np.float64]  # 2x3

ROTATION_MODES = ("off", "auto", "always")
# The sweep's turns (counter-clockwise as displayed, OpenCV's convention). YuNet keeps good landmarks up to about
# 15-20 degrees of tilt and still finds most faces at 30, so 45-degree steps leave every face within 22.5 degrees of
# one view, and the refinement pass (3. above) levels it.
SWEEP_ANGLES_DEG = (45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0)
# "auto" sweeps when the upright pass's best face is less sure than this: YuNet scores upright LFW faces 0.93-0.95
# and the same faces turned 45, 60, 90 or 180 degrees mostly 0.65-0.90.
SUSPECT_SCORE = 0.9
# ...or when any face's eye line is tilted more than this (upright LFW faces: within 5 degrees; the landmarks of a
# face turned 45 degrees report 8-30).
SUSPECT_ROLL_DEG = 15.0
# Below SUSPECT_ROLL_DEG, a face tilted more than this gets one pass on a copy turned 45 degrees its way (then the
# levelling pass) instead of the whole sweep: the upright pass of a face turned 45 degrees often reports only 10-15
# (8 of the 10 LFW photos turned 45 that the sweep's triggers missed, of 200), upright LFW faces exceed 10 in 2 of 200.
TILTED_ROLL_DEG = 10.0
# A face whose best view still shows it tilted more than this is detected again on a copy that levels it.
REFINE_ROLL_DEG = 5.0
# A view from a turned copy must score at least this to be kept (otherwise the upright detection stands). The best
# view of LFW faces turned 0-180 degrees scores 0.88-0.95 (2nd percentile 0.90; 60 photos per angle); the levelled
# views of the two dogs of dlib's dogs.jpg, which the upright pass scores 0.65 and 0.77, score 0.83 and 0.86.
MIN_TURNED_VIEW_SCORE = 0.87
# Views of one face from different turns overlap less than a detector's duplicates do (the mapped boxes of a tilted
# face differ in shape); 0.3, YuNet's own NMS bound, keeps one view per face on the LFW and dlib photos measured.
MERGE_IOU = 0.3


class Detector(Protocol):
    def detect(self, bgr: BgrImage) -> list[Detection]: ...


@dataclass(frozen=True)
class DetectionReport:
    """Detections in the photo's pixels, and the turns (degrees) of every pass that was run, upright first.

    below_threshold: what the upright pass found under the detector's score threshold (down to the floor the wrapped
    detector was run at), best score first; the analyzer's subject-face fallback picks from it when detections is
    empty. fallback: detections is that pick (set by the analyzer, never here)."""

    detections: list[Detection]
    passes: tuple[float, ...]
    below_threshold: tuple[Detection, ...] = ()
    fallback: bool = False


def rotate_expanded(bgr: BgrImage, degrees: float) -> tuple[BgrImage, Affine]:
    """bgr turned by degrees (counter-clockwise as displayed) on a canvas that keeps every pixel, and the 2x3 affine
    that takes the photo's coordinates to the copy's. Coordinates are continuous with pixel (i, j) covering
    [i, i + 1) x [j, j + 1), as detectors report boxes (0 is the left edge, the width the right edge). Quarter turns
    are exact pixel permutations (no resampling)."""
    height, width = bgr.shape[:2]
    quarter = round(degrees / 90.0)
    if math.isclose(degrees / 90.0, quarter, abs_tol=1e-9):
        quarter %= 4
        copy = bgr if quarter == 0 else cv2.rotate(bgr, _QUARTER_TURNS[quarter])
        return np.ascontiguousarray(copy, dtype=np.uint8), _quarter_turn_matrix(quarter, width, height)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width = max(1, round(height * sin + width * cos))
    new_height = max(1, round(height * cos + width * sin))
    matrix[0, 2] += new_width / 2 - width / 2
    matrix[1, 2] += new_height / 2 - height / 2
    # warpAffine samples at pixel centres (index coordinates); the same turn in edge coordinates is the matrix
    # conjugated by a half-pixel shift, used for the warp so that the returned matrix describes it exactly.
    centred = matrix.copy()
    centred[:, 2] = matrix[:, 2] - 0.5 + matrix[:, :2] @ np.array([0.5, 0.5])
    copy = cv2.warpAffine(bgr, centred, (new_width, new_height), flags=cv2.INTER_LINEAR)
    return np.asarray(copy, dtype=np.uint8), matrix.astype(np.float64)


_QUARTER_TURNS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def _quarter_turn_matrix(quarter: int, width: int, height: int) -> Affine:
    """The affine of cv2.rotate in edge coordinates: counter-clockwise quarter turns of a width x height image."""
    if quarter == 0:
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if quarter == 1:  # (x, y) -> (y, width - x)
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, float(width)]])
    if quarter == 2:  # (x, y) -> (width - x, height - y)
        return np.array([[-1.0, 0.0, float(width)], [0.0, -1.0, float(height)]])
    return np.array([[0.0, -1.0, float(height)], [1.0, 0.0, 0.0]])  # (x, y) -> (height - y, x)


def map_back(detection: Detection, forward: Affine) -> Detection:
    """A detection made on a turned copy, in the photo's pixels (forward took the photo to the copy).

    Landmarks map exactly. The box keeps its centre (mapped exactly) and the face's own width and height, exchanged
    when the turn is nearer a quarter than a half turn: the face's size, not the larger box that would enclose its
    turned outline. For quarter turns that is exactly the turned box.
    """
    inverse = np.asarray(cv2.invertAffineTransform(forward), dtype=np.float64)
    points = _apply(inverse, np.asarray(detection.landmarks, dtype=np.float64))
    box = detection.box
    ((cx, cy),) = _apply(inverse, np.array([[(box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2]]))
    turn = math.degrees(math.atan2(-forward[1, 0], forward[0, 0]))
    sideways = abs(math.sin(math.radians(turn))) > abs(math.cos(math.radians(turn)))
    half_w, half_h = (box.height / 2, box.width / 2) if sideways else (box.width / 2, box.height / 2)
    return Detection(
        box=BoundingBox(float(cx - half_w), float(cy - half_h), float(cx + half_w), float(cy + half_h)),
        landmarks=points.astype(np.float32),
        score=detection.score,
    )


def _apply(matrix: Affine, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return points @ matrix[:, :2].T + matrix[:, 2]


def eye_roll_deg(landmarks: npt.NDArray[np.float32]) -> float:
    """The eye line's tilt in degrees (0 level, positive when the image-right eye is lower), as quality.py measures."""
    dx, dy = (np.asarray(landmarks[1], dtype=np.float64) - np.asarray(landmarks[0], dtype=np.float64)).tolist()
    return math.degrees(math.atan2(dy, dx)) if math.hypot(dx, dy) > 0 else 0.0


@dataclass(frozen=True)
class _View:
    """A detection mapped back to the photo, with the turn of the pass that made it and its tilt in that pass."""

    detection: Detection
    turn: float
    residual_roll: float


class RotationRobustDetector:
    """Wraps a detector (see the module docstring); detect() has the wrapped detector's contract."""

    def __init__(
        self,
        detector: Detector,
        mode: str = "auto",
        *,
        suspect_score: float = SUSPECT_SCORE,
        turned_view_score: float = MIN_TURNED_VIEW_SCORE,
        score_threshold: float = 0.0,
    ) -> None:
        if mode not in ROTATION_MODES:
            raise ValueError(f"rotation mode must be one of {', '.join(ROTATION_MODES)}, not {mode!r}")
        self.detector = detector
        self.mode = mode
        # The defaults were measured on YuNet's scores; other detectors score clear faces lower (SCRFD: median 0.79).
        self.suspect_score = suspect_score
        self.turned_view_score = turned_view_score
        # What counts as a face. The wrapped detector may run lower (the analyzer's fallback floor): what it finds
        # below this in the upright pass is reported apart (below_threshold) and never triggers or joins a sweep.
        self.score_threshold = score_threshold

    def detect(self, bgr: BgrImage) -> list[Detection]:
        return self.detect_report(bgr).detections

    def detect_report(self, bgr: BgrImage) -> DetectionReport:
        """The merged detections and which passes were run."""
        found = [_View(d, 0.0, eye_roll_deg(d.landmarks)) for d in self.detector.detect(bgr)]
        upright = [v for v in found if v.detection.score >= self.score_threshold]
        below = tuple(
            sorted(
                (v.detection for v in found if v.detection.score < self.score_threshold),
                key=lambda d: d.score,
                reverse=True,
            )
        )
        if self.mode == "off":
            return DetectionReport([v.detection for v in upright], (0.0,), below)
        sweep: tuple[float, ...] = SWEEP_ANGLES_DEG
        if self.mode == "auto" and not _suspect(upright, self.suspect_score):
            # Only the turn towards each tilted face (45 degrees counter-clockwise undoes a positive roll).
            sweep = tuple(sorted({45.0 if v.residual_roll > 0 else 315.0 for v in upright if _tilted(v)}))
            if not sweep:
                return DetectionReport([v.detection for v in upright], (0.0,), below)
        passes = [0.0]
        views = list(upright)
        for angle in sweep:
            views.extend(self._pass(bgr, angle))
            passes.append(angle)
        # Level each face whose best view still shows it tilted; faces needing the same turn share one pass.
        wanted = {round((v.turn + v.residual_roll) % 360.0, 1) for v in _merge(views) if _needs_refining(v)}
        for angle in sorted(wanted - set(passes)):
            views.extend(self._pass(bgr, angle))
            passes.append(angle)
        # A turned view must score turned_view_score before it can stand for a face, even one the upright pass found:
        # levelling a dog's face raises its score, and a weak upright detection must not be laundered into a
        # confident one. Below that, the upright detection (if any) stays.
        kept = [v for v in views if v.turn == 0.0 or v.detection.score >= self.turned_view_score]
        detections = [v.detection for v in _merge(kept)]
        detections.sort(key=lambda d: d.box.area, reverse=True)
        return DetectionReport(detections, tuple(passes), below)

    def _pass(self, bgr: BgrImage, angle: float) -> list[_View]:
        turned, forward = rotate_expanded(bgr, angle)
        return [
            _View(map_back(d, forward), angle, eye_roll_deg(d.landmarks))
            for d in self.detector.detect(turned)
            if d.score >= self.score_threshold
        ]


def _suspect(upright: Sequence[_View], suspect_score: float) -> bool:
    if not upright:
        return True
    if max(v.detection.score for v in upright) < suspect_score:
        return True
    return any(abs(v.residual_roll) > SUSPECT_ROLL_DEG for v in upright)


def _tilted(view: _View) -> bool:
    return abs(view.residual_roll) > TILTED_ROLL_DEG


def _needs_refining(view: _View) -> bool:
    return abs(view.residual_roll) > REFINE_ROLL_DEG


def _merge(views: Sequence[_View]) -> list[_View]:
    """One view per face: the best-scoring, the others overlapping it by more than MERGE_IOU dropped."""
    if not views:
        return []
    boxes = np.array([v.detection.box.as_tuple() for v in views], dtype=np.float32)
    scores = np.array([v.detection.score for v in views], dtype=np.float32)
    return [views[int(i)] for i in nms(boxes, scores, MERGE_IOU)]
