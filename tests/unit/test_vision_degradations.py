"""The robustness degradations: deterministic, shape-preserving (or as documented), and they hit the face."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.vision import degradations
from facetrace.vision.geometry import ARCFACE_TEMPLATE_112

# A 250x250 "photo" with a face-sized set of landmarks at LFW's position (eyes ~45 px apart around the centre).
LANDMARKS = (ARCFACE_TEMPLATE_112 - 56.0) * 1.2 + np.array([125.0, 120.0], dtype=np.float32)


def _photo() -> np.ndarray:
    rng = np.random.default_rng(7)
    # Smooth-ish texture plus detail, so blur, noise and JPEG all visibly change it.
    base = rng.integers(60, 200, (25, 25, 3), dtype=np.uint8).repeat(10, axis=0).repeat(10, axis=1)
    detail = rng.integers(-20, 21, base.shape)
    return np.clip(base.astype(np.int64) + detail, 0, 255).astype(np.uint8)


ALL = [(name, strength) for name, spec in degradations.CONDITIONS.items() for strength in spec.strengths]


@pytest.mark.parametrize(("name", "strength"), ALL)
def test_every_condition_is_deterministic_and_changes_the_image(name: str, strength: float) -> None:
    photo = _photo()
    first = degradations.degrade(photo, name, strength, LANDMARKS, seed=3)
    second = degradations.degrade(photo.copy(), name, strength, LANDMARKS, seed=3)
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert np.array_equal(first, second)
    if first.shape == photo.shape:
        assert np.count_nonzero(np.any(first != photo, axis=2)) > 200  # at least the size of two painted eyes
    assert np.array_equal(photo, _photo()), "the input must not be modified"


@pytest.mark.parametrize("name", [n for n, s in degradations.CONDITIONS.items() if n not in ("rotate", "downscale")])
def test_pixel_conditions_keep_the_size(name: str) -> None:
    spec = degradations.CONDITIONS[name]
    assert degradations.degrade(_photo(), name, spec.strengths[-1], LANDMARKS).shape == (250, 250, 3)


def test_noise_depends_on_the_seed() -> None:
    photo = _photo()
    assert not np.array_equal(
        degradations.gaussian_noise(photo, 20, seed=1), degradations.gaussian_noise(photo, 20, seed=2)
    )


def test_downscale_makes_the_face_the_requested_width() -> None:
    eye_distance = float(np.hypot(*(LANDMARKS[1] - LANDMARKS[0])))
    face_width = eye_distance * degradations.FACE_WIDTH_PER_EYE_DISTANCE
    small = degradations.downscale(_photo(), 32, LANDMARKS)
    assert small.shape[1] == pytest.approx(250 * 32 / face_width, abs=1)


def test_rotation_enlarges_the_canvas_and_right_angles_swap_sides() -> None:
    photo = _photo()[:, :200]
    assert degradations.rotate(photo, 45).shape[:2] == degradations.rotated_canvas(200, 250, 45)
    assert degradations.rotate(photo, 90).shape[:2] == (200, 250)
    assert np.array_equal(degradations.rotate(photo, 180)[5:-5, 5:-5], photo[::-1, ::-1][5:-5, 5:-5])


def _changed(before: np.ndarray, after: np.ndarray, point: np.ndarray) -> bool:
    x, y = round(float(point[0])), round(float(point[1]))
    return bool(np.any(before[y - 1 : y + 2, x - 1 : x + 2] != after[y - 1 : y + 2, x - 1 : x + 2]))


def test_eye_bar_covers_both_eyes_and_spares_the_mouth() -> None:
    photo = _photo()
    out = degradations.occlude_eyes(photo, 1.0, LANDMARKS)
    assert _changed(photo, out, LANDMARKS[0]) and _changed(photo, out, LANDMARKS[1])
    assert not _changed(photo, out, LANDMARKS[3]) and not _changed(photo, out, LANDMARKS[4])
    assert np.array_equal(out[:10], photo[:10])


def test_mouth_mask_covers_the_mouth_and_spares_the_eyes() -> None:
    photo = _photo()
    out = degradations.occlude_mouth(photo, 1.0, LANDMARKS)
    assert _changed(photo, out, LANDMARKS[3]) and _changed(photo, out, LANDMARKS[4])
    assert not _changed(photo, out, LANDMARKS[0]) and not _changed(photo, out, LANDMARKS[1])


def test_half_face_hides_one_side_up_to_the_nose() -> None:
    photo = _photo()
    out = degradations.occlude_half_face(photo, 1.0, LANDMARKS)
    assert _changed(photo, out, LANDMARKS[0]) and _changed(photo, out, LANDMARKS[3])  # image-left eye and mouth
    assert not _changed(photo, out, LANDMARKS[1]) and not _changed(photo, out, LANDMARKS[4])


def test_closed_eyes_paint_only_the_eyes() -> None:
    photo = _photo()
    out = degradations.closed_eyes(photo, 1.0, LANDMARKS)
    assert _changed(photo, out, LANDMARKS[0]) and _changed(photo, out, LANDMARKS[1])
    assert not _changed(photo, out, LANDMARKS[2])
    assert np.count_nonzero(np.any(out != photo, axis=2)) < 0.05 * photo.shape[0] * photo.shape[1]


def test_occlusions_need_landmarks_and_unknown_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="landmarks"):
        degradations.degrade(_photo(), "occlude_eyes", 1.0, None)
    with pytest.raises(KeyError, match="known"):
        degradations.degrade(_photo(), "sepia", 1.0, None)


def test_stronger_blur_removes_more_detail() -> None:
    photo = _photo()
    detail = [
        float(np.std(np.diff(degradations.gaussian_blur(photo, s).astype(np.float64), axis=1))) for s in (1, 2, 4)
    ]
    assert detail[0] > detail[1] > detail[2]
