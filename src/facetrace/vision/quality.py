"""How far a face can be trusted as evidence: size, sharpness, pose, detector confidence, occlusion, visible eyes and
noise, each with a named bound.

Every measurement is cheap and explainable: a reviewer can check each flag by looking at the thumbnail. The bounds of
the occlusion, eye and noise flags were measured with `facetrace eval robustness` (docs/robustness.md) on the 1,583
clean photos of LFW's first two folds and on degraded copies of 100 of them; "clean p99" below is the 99th percentile
of the clean photos, "median" the median over the degraded copies.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.core.types import Detection, FaceQuality
from facetrace.vision.geometry import ARCFACE_TEMPLATE_112

# A face whose box's shorter side is below this many pixels carries little identity detail ("small").
MIN_FACE_SIZE_PX = 40.0
# ...or whose eyes are closer than this (frontal faces only: in profile the eyes converge anyway).
MIN_INTER_OCULAR_PX = 15.0
# Faces at or above this size count as fully resolved in the score.
FULL_FACE_SIZE_PX = 100.0
# Variance of the Laplacian of the aligned grey 112x112 crop; sharpness = var / (var + SHARPNESS_HALF_VARIANCE), so
# a crop with this variance scores 0.5. On 150 LFW photos the median variance is 147 (sharpness 0.59); after a Gaussian
# blur of sigma 1, 2, 3 px it is 57, 19, 10.
SHARPNESS_HALF_VARIANCE = 100.0
# Below this normalised sharpness (variance 33) the crop is "blurry": 1% of those LFW crops, 13% at sigma 1,
# 91% at sigma 2 and all at sigma 3.
MIN_SHARPNESS = 0.25
# Nose-tip depth in front of the eyes relative to the eye distance (anthropometric average, about 0.35): turns the
# nose's sideways offset from the eye midline into a yaw angle.
NOSE_DEPTH_PER_EYE_DISTANCE = 0.35
# Beyond this yaw one side of the face is mostly hidden ("profile").
MAX_FRONTAL_YAW_DEG = 45.0
# Beyond this in-plane tilt the detector's landmarks are less reliable ("rotated"); alignment undoes the tilt itself.
MAX_UPRIGHT_ROLL_DEG = 30.0
# Below this detector confidence the "face" may be a false detection or heavily occluded ("low_detection_score").
# YuNet scores clear faces 0.85-0.96; hard real faces (near profile, occluded) and animal faces (0.65 and 0.77 for the
# two dogs in dlib's dogs.jpg) fall between the detection threshold and this bound. A pack's manifest may set its
# own bound (detector.confident_detection_score); this is the default and the built-in pack's.
MIN_CONFIDENT_DETECTION = 0.8
# Occlusion ("occluded"): the share of 8x8-pixel blocks of a region of the aligned 112x112 grey crop whose standard
# deviation is below FLAT_BLOCK_STD grey levels, i.e. without any texture (a hand, a scarf, sunglasses, a mask, a bar).
FLAT_BLOCK_STD = 4.0
FLAT_BLOCK_PX = 8
# Eye band (rows 40-64): clean p99 0.15; an eye bar 0.63, low contrast 0.2: 0.52.
MAX_FLAT_EYE_BAND = 0.3
# Mouth and chin (rows 80-104, columns 32-80): clean p99 0.22; a mouth mask 0.67.
MAX_FLAT_MOUTH = 0.4
# Either half of the face (rows 24-104, columns 16-56 or 56-96): clean p99 0.36; half the face hidden 0.60.
MAX_FLAT_HALF = 0.5
# Visible eyes ("eyes_not_visible"): how much darker the eyes (a 9x7 patch at each template eye point) are than the
# cheek just below them, in units of the face's grey standard deviation. Open eyes are dark: clean median 1.57, p1 0.28,
# p5 0.67; 3.1% of clean photos are below the bound. Closed-eye-like masks 0.63 (28% flagged); and where the landmarks
# are wrong - a face rotated by 30, 45, 90 or 180 degrees that the detector still reports - 0.58, 0.24, 0.19, 0.05.
MIN_EYE_DARKNESS = 0.5
# Noise ("noisy"): mean absolute difference between the grey crop and its 3x3 median, in grey levels. Clean p99 2.4;
# Gaussian noise of sigma 10, 20, 40 grey levels: 3.1, 5.8, 10.8 (sigma 10 costs no accuracy, so it stays unflagged).
MAX_NOISE_RESIDUAL = 4.0
# Scores map linearly from these floors to 1 at the bounds above.
DETECTION_SCORE_FLOOR = 0.5
YAW_FOR_ZERO_SCORE_DEG = 90.0


def assess_quality(
    detection: Detection,
    aligned_bgr: npt.NDArray[np.uint8],
    confident_detection_score: float = MIN_CONFIDENT_DETECTION,
    *,
    below_threshold: bool = False,
) -> FaceQuality:
    """Measure one detected face; aligned_bgr is its aligned crop (the embedder's input). Below
    confident_detection_score (the pack's bound for its detector) the face is flagged "low_detection_score", and so
    is a face scored below the detection threshold (below_threshold: kept by the analyzer's subject-face fallback),
    whatever the bound."""
    points = np.asarray(detection.landmarks, dtype=np.float64)
    face_size = float(min(detection.box.width, detection.box.height))
    eye_vector = points[1] - points[0]
    inter_ocular = float(np.hypot(*eye_vector))
    roll = math.degrees(math.atan2(eye_vector[1], eye_vector[0])) if inter_ocular > 0 else 0.0
    yaw = estimate_yaw_deg(points)
    sharpness = normalised_sharpness(aligned_bgr)
    score = float(detection.score)

    flags: list[str] = []
    if face_size < MIN_FACE_SIZE_PX or (abs(yaw) < MAX_FRONTAL_YAW_DEG and inter_ocular < MIN_INTER_OCULAR_PX):
        flags.append("small")
    if sharpness < MIN_SHARPNESS:
        flags.append("blurry")
    if abs(yaw) > MAX_FRONTAL_YAW_DEG:
        flags.append("profile")
    if score < confident_detection_score or below_threshold:
        flags.append("low_detection_score")
    if abs(roll) > MAX_UPRIGHT_ROLL_DEG:
        flags.append("rotated")
    flags.extend(appearance_flags(aligned_bgr))

    components = (
        _ramp(face_size, MIN_FACE_SIZE_PX / 2, FULL_FACE_SIZE_PX),
        _ramp(sharpness, 0.0, 0.5),
        _ramp(YAW_FOR_ZERO_SCORE_DEG - abs(yaw), 0.0, YAW_FOR_ZERO_SCORE_DEG - MAX_FRONTAL_YAW_DEG / 2),
        _ramp(score, DETECTION_SCORE_FLOOR, 0.9),
    )
    # Geometric mean: any one very weak component pulls the score down, as it should for evidence.
    overall = float(np.prod(components) ** (1.0 / len(components)))
    return FaceQuality(
        score=round(overall, 4),
        face_size_px=face_size,
        sharpness=round(sharpness, 4),
        detection_score=score,
        yaw_deg=round(yaw, 2),
        roll_deg=round(roll, 2),
        flags=tuple(flags),
    )


def estimate_yaw_deg(landmarks: npt.NDArray[np.float64]) -> float:
    """Yaw from the nose tip's offset along the eye line, relative to the eye distance.

    Positive when the nose points to the image's right. 0 for a frontal face, about +-45 at a half profile.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    eye_vector = points[1] - points[0]
    eye_distance = float(np.hypot(*eye_vector))
    if eye_distance < 1e-6:
        return 90.0  # both eyes in one place: a full profile
    direction = eye_vector / eye_distance
    offset = float(np.dot(points[2] - (points[0] + points[1]) / 2, direction)) / eye_distance
    return math.degrees(math.atan(offset / NOSE_DEPTH_PER_EYE_DISTANCE))


def laplacian_variance(bgr: npt.NDArray[np.uint8]) -> float:
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def normalised_sharpness(aligned_bgr: npt.NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of the aligned crop, squashed into [0, 1) (0.5 at SHARPNESS_HALF_VARIANCE)."""
    variance = laplacian_variance(aligned_bgr)
    return variance / (variance + SHARPNESS_HALF_VARIANCE)


def appearance_flags(aligned_bgr: npt.NDArray[np.uint8]) -> list[str]:
    """Flags read from the aligned crop's pixels: occluded, eyes_not_visible, noisy (bounds above)."""
    grey = _grey_112(aligned_bgr)
    flags: list[str] = []
    halves = max(flat_share(grey[24:104, 16:56]), flat_share(grey[24:104, 56:96]))
    if (
        flat_share(grey[40:64, 20:92]) >= MAX_FLAT_EYE_BAND
        or flat_share(grey[80:104, 32:80]) >= MAX_FLAT_MOUTH
        or halves >= MAX_FLAT_HALF
    ):
        flags.append("occluded")
    if eye_darkness(grey) < MIN_EYE_DARKNESS:  # as eyes_visible()
        flags.append("eyes_not_visible")
    if noise_residual(grey) >= MAX_NOISE_RESIDUAL:
        flags.append("noisy")
    return flags


def eyes_visible(aligned_bgr: npt.NDArray[np.uint8]) -> bool:
    """Whether the aligned crop shows dark eyes where a face's eyes are: the "eyes_not_visible" flag's test, which is
    also what the subject-face fallback asks of a face the detector doubts (dog faces fail it: vision/analyzer.py)."""
    return eye_darkness(_grey_112(aligned_bgr)) >= MIN_EYE_DARKNESS


def _grey_112(aligned_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The crop in grey at 112x112, the frame the region bounds and ARCFACE_TEMPLATE_112 are given in."""
    grey = cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2GRAY) if aligned_bgr.ndim == 3 else aligned_bgr
    if grey.shape[:2] != (112, 112):
        grey = cv2.resize(grey, (112, 112), interpolation=cv2.INTER_AREA)
    return np.asarray(grey, dtype=np.uint8)


def flat_share(region: npt.NDArray[np.uint8]) -> float:
    """The share of FLAT_BLOCK_PX-square blocks of this region whose grey standard deviation is below FLAT_BLOCK_STD."""
    rows = region.shape[0] // FLAT_BLOCK_PX * FLAT_BLOCK_PX
    columns = region.shape[1] // FLAT_BLOCK_PX * FLAT_BLOCK_PX
    if rows == 0 or columns == 0:
        return 0.0
    blocks = region[:rows, :columns].astype(np.float64)
    blocks = blocks.reshape(rows // FLAT_BLOCK_PX, FLAT_BLOCK_PX, columns // FLAT_BLOCK_PX, FLAT_BLOCK_PX)
    return float(np.mean(blocks.std(axis=(1, 3)) < FLAT_BLOCK_STD))


def eye_darkness(grey: npt.NDArray[np.uint8]) -> float:
    """(cheek - eye) mean grey at both template eye points, over the face's grey standard deviation."""
    values = grey.astype(np.float64)
    spread = max(float(values[16:104, 16:96].std()), 1.0)
    differences = []
    for x, y in np.round(ARCFACE_TEMPLATE_112[:2]).astype(int):
        eye = values[y - 3 : y + 4, x - 4 : x + 5].mean()
        cheek = values[y + 12 : y + 19, x - 4 : x + 5].mean()
        differences.append(cheek - eye)
    return float(np.mean(differences)) / spread


def noise_residual(grey: npt.NDArray[np.uint8]) -> float:
    """Mean absolute difference between the grey crop and its 3x3 median filter (isolated-pixel noise)."""
    return float(np.mean(np.abs(grey.astype(np.float64) - cv2.medianBlur(grey, 3).astype(np.float64))))


def _ramp(value: float, low: float, high: float) -> float:
    if high <= low:
        return 1.0 if value >= high else 0.0
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))
