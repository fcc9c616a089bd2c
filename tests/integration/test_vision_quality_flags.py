"""The appearance flags on real LFW photos: quiet on clean faces, raised by the degradations they are meant to catch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrace.evaluation.datasets import read_pairs
from facetrace.evaluation.embeddings import select_subject_face
from facetrace.vision import degradations
from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.options import AnalyzerOptions

PHOTOS = 12


@pytest.fixture(scope="module")
def analyzer() -> Iterator[OnnxFaceAnalyzer]:
    yield open_analyzer(AnalyzerOptions(threads=2, min_detection_score=None))


@pytest.fixture(scope="module")
def plain_analyzer() -> Iterator[OnnxFaceAnalyzer]:
    """Without the rotation fallback: upside-down faces reach the quality stage as the detector saw them (down to
    YuNet's own 0.6: the pack's 0.8 drops some, and the subject-face fallback refuses faces whose eyes do not show)."""
    yield open_analyzer(AnalyzerOptions(threads=2, rotation_fallback="off", min_detection_score=0.6))


def _flags_under(
    analyzer: OnnxFaceAnalyzer, lfw: Path, condition: str, strength: float
) -> list[tuple[str, ...] | None]:
    """The subject face's flags in each degraded photo (None where no face was found)."""
    paths = list(dict.fromkeys(pair.path_b for pair in read_pairs(lfw / "pairs_resolved.csv")))[:PHOTOS]
    found: list[tuple[str, ...] | None] = []
    for index, path in enumerate(paths):
        bgr = decode_image((lfw / path).read_bytes(), path)
        clean = select_subject_face(analyzer.analyze_array(bgr, path))
        assert clean is not None
        if condition == "clean":
            found.append(clean.quality.flags)
            continue
        degraded = degradations.degrade(bgr, condition, strength, clean.detection.landmarks, seed=index)
        face = select_subject_face(analyzer.analyze_array(degraded, f"{path}#{condition}"))
        found.append(None if face is None else face.quality.flags)
    return found


def _share_with(flag: str, flags: list[tuple[str, ...] | None]) -> float:
    detected = [f for f in flags if f is not None]
    assert detected, "no face was detected at all"
    return sum(flag in f for f in detected) / len(detected)


@pytest.mark.slow
def test_new_flags_are_quiet_on_clean_lfw_faces(analyzer: OnnxFaceAnalyzer, lfw: Path) -> None:
    flags = _flags_under(analyzer, lfw, "clean", 0.0)
    for flag in ("occluded", "eyes_not_visible", "noisy"):
        assert _share_with(flag, flags) <= 1 / PHOTOS, flag


@pytest.mark.slow
@pytest.mark.parametrize(
    ("condition", "strength", "flag", "at_least"),
    [
        ("occlude_eyes", 1.0, "occluded", 0.75),  # 84% of 100 photos in the benchmark
        ("occlude_mouth", 1.0, "occluded", 0.9),
        ("noise", 40.0, "noisy", 0.9),
        ("rotate", 180.0, "rotated", 0.9),  # the fallback finds and levels them, and says it turned them
    ],
)
def test_degraded_faces_carry_the_flag(
    analyzer: OnnxFaceAnalyzer, lfw: Path, condition: str, strength: float, flag: str, at_least: float
) -> None:
    assert _share_with(flag, _flags_under(analyzer, lfw, condition, strength)) >= at_least


@pytest.mark.slow
def test_upside_down_faces_without_the_fallback_are_flagged_eyes_not_visible(
    plain_analyzer: OnnxFaceAnalyzer, lfw: Path
) -> None:
    assert _share_with("eyes_not_visible", _flags_under(plain_analyzer, lfw, "rotate", 180.0)) >= 0.6
