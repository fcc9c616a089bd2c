"""Controlled, deterministic image degradations for the robustness benchmark (facetrace eval robustness).

Each condition is a pure function of (image, strength, landmarks, seed): the same input gives the same bytes, so a
benchmark figure can be reproduced exactly. All pixel work lives here because OpenCV is confined to the vision layer;
the evaluation harness only names conditions and strengths.

Strengths are in the condition's natural unit (blur sigma in px, face width in px, JPEG quality, noise sigma in grey
levels, gamma, contrast factor, rotation in degrees). Occlusions need the clean face's five landmarks (InsightFace
order: left eye, right eye, nose tip, left mouth corner, right mouth corner, in image pixels) to know where to paint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

BgrImage = npt.NDArray[np.uint8]
Landmarks = npt.NDArray[np.float32]

# LFW deepfunneled faces are about this wide (eye-to-eye distance x ~2.3) in the 250x250 images; downscaling to a
# target face width shrinks the whole image by target / this.
LFW_FACE_WIDTH_PX = 100.0
# A face is this many eye distances wide (outer cheek to cheek); used to convert landmarks into a face width.
FACE_WIDTH_PER_EYE_DISTANCE = 2.3
# Occluder colour: a mid-dark grey, like a hand, scarf or sunglasses, rather than pure black (which would also test
# the detector's reaction to a hard edge more than to missing identity).
OCCLUDER_BGR = (40, 40, 40)
# Eye band: half-height of the sunglasses-like bar, in eye distances; it reaches past each eye by EYE_BAND_MARGIN.
EYE_BAND_HALF_HEIGHT = 0.3
EYE_BAND_MARGIN = 0.5
# Mouth mask (a surgical-mask-like rectangle from just below the nose tip to below the chin).
MOUTH_MASK_TOP_BELOW_NOSE = 0.25
MOUTH_MASK_DEPTH = 1.4
MOUTH_MASK_MARGIN = 0.6
# Closed-eye-like mask: each eye is replaced by a skin-coloured ellipse (the mean colour around it) with a thin dark
# lid line, roughly what a closed eye looks like at LFW resolution.
CLOSED_EYE_HALF_WIDTH = 0.28
CLOSED_EYE_HALF_HEIGHT = 0.14
LID_LINE_BGR = (30, 30, 50)


@dataclass(frozen=True)
class Condition:
    """A named degradation, the strengths the benchmark applies it at, and whether it needs landmarks."""

    name: str
    strengths: tuple[float, ...]
    unit: str
    apply: Callable[[BgrImage, float, Landmarks | None, int], BgrImage]
    needs_landmarks: bool = False
    description: str = ""


# -- photometric ----------------------------------------------------------------------------------------------------


def gaussian_blur(bgr: BgrImage, sigma: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """Out-of-focus blur: a Gaussian of this sigma in pixels (kernel 6 sigma wide)."""
    size = 2 * math.ceil(3 * sigma) + 1
    return np.ascontiguousarray(cv2.GaussianBlur(bgr, (size, size), sigmaX=sigma, sigmaY=sigma))


def motion_blur(bgr: BgrImage, length: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """Camera shake: a line kernel of this length in pixels, at an angle drawn from the seed."""
    length_px = max(1, round(length))
    angle = float(np.random.default_rng(seed).uniform(0.0, 180.0))
    kernel = np.zeros((length_px, length_px), dtype=np.float32)
    kernel[length_px // 2, :] = 1.0
    centre = ((length_px - 1) / 2.0, (length_px - 1) / 2.0)
    rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
    rotated = np.asarray(cv2.warpAffine(kernel, rotation, (length_px, length_px), flags=cv2.INTER_LINEAR))
    kernel = (rotated / max(float(rotated.sum()), 1e-6)).astype(np.float32)
    return np.ascontiguousarray(cv2.filter2D(bgr, -1, kernel, borderType=cv2.BORDER_REFLECT))


def downscale(bgr: BgrImage, face_width_px: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """Shrink the whole image so the face is about face_width_px wide (a distant face); the detector upscales itself.

    The face width comes from the landmarks when given, else LFW_FACE_WIDTH_PX is assumed.
    """
    face_width = LFW_FACE_WIDTH_PX
    if landmarks is not None:
        points = np.asarray(landmarks, dtype=np.float64)
        face_width = max(1.0, float(np.hypot(*(points[1] - points[0]))) * FACE_WIDTH_PER_EYE_DISTANCE)
    factor = min(1.0, face_width_px / face_width)
    height, width = bgr.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.ascontiguousarray(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA))


def jpeg(bgr: BgrImage, quality: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """Re-encode as JPEG at this quality (1-100) and decode again: blocking and ringing artefacts."""
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, round(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding at quality {quality} failed")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(decoded)


def gaussian_noise(bgr: BgrImage, sigma: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """Sensor noise: independent Gaussian noise of this sigma (grey levels) per pixel and channel, seeded."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, bgr.shape)
    return np.clip(bgr.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def darken(bgr: BgrImage, gamma: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """Under-exposure: out = 255 * (in / 255) ** gamma with gamma > 1 (2 keeps a quarter of mid-grey's level)."""
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    darkened: BgrImage = table[bgr]
    return np.ascontiguousarray(darkened)


def low_contrast(bgr: BgrImage, factor: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """Haze or a flat exposure: pixel values pulled towards the image mean, keeping `factor` of their spread."""
    mean = bgr.reshape(-1, bgr.shape[-1]).mean(axis=0)
    out = mean + (bgr.astype(np.float64) - mean) * factor
    flattened: BgrImage = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return flattened


# -- geometric ------------------------------------------------------------------------------------------------------


def rotate(bgr: BgrImage, degrees: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """In-plane rotation about the image centre (counter-clockwise), the canvas enlarged so nothing is cut off."""
    height, width = bgr.shape[:2]
    matrix = rotation_matrix(width, height, degrees)
    new_width, new_height = rotated_canvas(width, height, degrees)
    return np.ascontiguousarray(
        cv2.warpAffine(
            bgr, matrix, (new_width, new_height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
    )


def rotated_canvas(width: int, height: int, degrees: float) -> tuple[int, int]:
    radians = math.radians(degrees)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    return round(width * cos + height * sin), round(width * sin + height * cos)


def rotation_matrix(width: int, height: int, degrees: float) -> npt.NDArray[np.float64]:
    """The 2x3 affine map rotate() applies: rotation about the centre, then a shift into the enlarged canvas."""
    # Pixel centres sit on integer coordinates, so the image's centre is ((w - 1) / 2, (h - 1) / 2): 180 degrees is
    # then an exact flip.
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    matrix = np.asarray(cv2.getRotationMatrix2D(centre, degrees, 1.0), dtype=np.float64)
    new_width, new_height = rotated_canvas(width, height, degrees)
    matrix[0, 2] += (new_width - width) / 2.0
    matrix[1, 2] += (new_height - height) / 2.0
    return matrix


# -- occlusions (need the clean face's landmarks) ---------------------------------------------------------------------


def _face_frame(landmarks: Landmarks | None) -> tuple[npt.NDArray[np.float64], float, float]:
    """(points, eye distance, eye-line angle in degrees) of the five landmarks."""
    if landmarks is None:
        raise ValueError("this occlusion needs the face's five landmarks")
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eye_vector = points[1] - points[0]
    eye_distance = max(1.0, float(np.hypot(*eye_vector)))
    angle = math.degrees(math.atan2(eye_vector[1], eye_vector[0]))
    return points, eye_distance, angle


def _fill_rotated_rect(
    image: BgrImage, centre: npt.NDArray[np.float64], width: float, height: float, angle: float
) -> None:
    box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (width, height), angle))
    cv2.fillConvexPoly(image, np.round(box).astype(np.int32), OCCLUDER_BGR, lineType=cv2.LINE_AA)


def occlude_eyes(bgr: BgrImage, strength: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """A sunglasses-like bar over both eyes; strength scales its height (1 = EYE_BAND_HALF_HEIGHT eye distances)."""
    points, eye_distance, angle = _face_frame(landmarks)
    out = bgr.copy()
    centre = (points[0] + points[1]) / 2.0
    width = eye_distance * (1.0 + 2.0 * EYE_BAND_MARGIN)
    height = 2.0 * EYE_BAND_HALF_HEIGHT * eye_distance * strength
    _fill_rotated_rect(out, centre, width, height, angle)
    return out


def occlude_mouth(bgr: BgrImage, strength: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """A mask over the mouth and chin from just below the nose; strength scales its depth."""
    points, eye_distance, angle = _face_frame(landmarks)
    out = bgr.copy()
    radians = math.radians(angle)
    down = np.array([-math.sin(radians), math.cos(radians)])  # perpendicular to the eye line, towards the chin
    mouth_centre = (points[3] + points[4]) / 2.0
    top = points[2] + down * (MOUTH_MASK_TOP_BELOW_NOSE * eye_distance)
    depth = MOUTH_MASK_DEPTH * eye_distance * strength
    # The mask's top edge sits below the nose tip and it extends down past the mouth; centred on the mouth sideways.
    top_offset = float(np.dot(top - mouth_centre, down))
    centre = mouth_centre + down * (top_offset + depth / 2.0)
    width = float(np.hypot(*(points[4] - points[3]))) + 2.0 * MOUTH_MASK_MARGIN * eye_distance
    _fill_rotated_rect(out, centre, width, depth, angle)
    return out


def occlude_half_face(bgr: BgrImage, strength: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """The image's left part of the face hidden up to the nose line (strength 1) or past it (strength > 1)."""
    points, eye_distance, angle = _face_frame(landmarks)
    out = bgr.copy()
    radians = math.radians(angle)
    along = np.array([math.cos(radians), math.sin(radians)])
    # A wide, tall rectangle whose right edge runs through the nose tip (shifted by strength - 1 eye distances).
    extent = 6.0 * eye_distance
    edge = points[2] + along * ((strength - 1.0) * eye_distance)
    centre = edge - along * (extent / 2.0)
    _fill_rotated_rect(out, centre, extent, extent, angle)
    return out


def closed_eyes(bgr: BgrImage, strength: float, landmarks: Landmarks | None = None, seed: int = 0) -> BgrImage:
    """Each eye painted over with the surrounding skin tone and a dark lid line: like closed eyes.

    strength scales the painted ellipse (1 covers the eye opening at LFW resolution).
    """
    points, eye_distance, angle = _face_frame(landmarks)
    out = bgr.copy()
    half_width = CLOSED_EYE_HALF_WIDTH * eye_distance * strength
    half_height = CLOSED_EYE_HALF_HEIGHT * eye_distance * strength
    for eye in points[:2]:
        skin = _skin_colour_below(bgr, eye, eye_distance)
        centre = (round(float(eye[0])), round(float(eye[1])))
        axes = (max(1, round(half_width)), max(1, round(half_height)))
        cv2.ellipse(out, centre, axes, angle, 0, 360, skin, thickness=-1, lineType=cv2.LINE_AA)
        radians = math.radians(angle)
        offset = np.array([math.cos(radians), math.sin(radians)]) * half_width * 0.9
        start = np.round(eye - offset).astype(int)
        end = np.round(eye + offset).astype(int)
        thickness = max(1, round(eye_distance * 0.03))
        cv2.line(out, (int(start[0]), int(start[1])), (int(end[0]), int(end[1])), LID_LINE_BGR, thickness, cv2.LINE_AA)
    return out


def _skin_colour_below(bgr: BgrImage, eye: npt.NDArray[np.float64], eye_distance: float) -> tuple[int, int, int]:
    """The mean colour of a patch on the cheek below the eye (what a lid looks like at low resolution)."""
    height, width = bgr.shape[:2]
    cx, cy = float(eye[0]), float(eye[1]) + 0.35 * eye_distance
    half = max(1, round(0.12 * eye_distance))
    x1, x2 = int(np.clip(cx - half, 0, width - 1)), int(np.clip(cx + half + 1, 1, width))
    y1, y2 = int(np.clip(cy - half, 0, height - 1)), int(np.clip(cy + half + 1, 1, height))
    patch = bgr[y1:y2, x1:x2].reshape(-1, bgr.shape[-1])
    colour = patch.mean(axis=0) if patch.size else np.array([128.0, 128.0, 128.0])
    return int(colour[0]), int(colour[1]), int(colour[2])


# -- the registry ---------------------------------------------------------------------------------------------------

CONDITIONS: dict[str, Condition] = {
    condition.name: condition
    for condition in (
        Condition("gaussian_blur", (1.0, 2.0, 3.0, 4.0), "sigma px", gaussian_blur, description="out of focus"),
        Condition("motion_blur", (5.0, 9.0, 15.0), "kernel px", motion_blur, description="camera shake"),
        Condition(
            "downscale",
            (64.0, 48.0, 32.0, 24.0),
            "face px",
            downscale,
            needs_landmarks=True,
            description="distant face, face width",
        ),
        Condition("jpeg", (30.0, 20.0, 10.0), "quality", jpeg, description="heavy compression"),
        Condition("noise", (10.0, 20.0, 40.0), "sigma grey", gaussian_noise, description="sensor noise"),
        Condition("darken", (2.0, 3.0), "gamma", darken, description="under-exposure"),
        Condition("low_contrast", (0.4, 0.2), "contrast kept", low_contrast, description="haze, flat light"),
        Condition("occlude_eyes", (1.0,), "bar", occlude_eyes, needs_landmarks=True, description="sunglasses-like"),
        Condition("occlude_mouth", (1.0,), "mask", occlude_mouth, needs_landmarks=True, description="face-mask-like"),
        Condition(
            "occlude_half", (1.0,), "to nose", occlude_half_face, needs_landmarks=True, description="half face hidden"
        ),
        Condition("closed_eyes", (1.0,), "lids", closed_eyes, needs_landmarks=True, description="closed-eye-like"),
        Condition("rotate", (15.0, 30.0, 45.0, 90.0, 180.0), "degrees", rotate, description="in-plane rotation"),
    )
}


def degrade(
    bgr: BgrImage, condition: str, strength: float, landmarks: Landmarks | None = None, seed: int = 0
) -> BgrImage:
    """Apply one registered condition at one strength. Raises KeyError naming the known conditions."""
    try:
        spec = CONDITIONS[condition]
    except KeyError:
        raise KeyError(f"unknown degradation {condition!r}; known: {', '.join(CONDITIONS)}") from None
    if spec.needs_landmarks and landmarks is None:
        raise ValueError(f"{condition} needs the clean face's landmarks")
    return spec.apply(bgr, strength, landmarks, seed)
