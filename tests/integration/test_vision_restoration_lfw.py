"""Restoration on real LFW photos: grainy and flat copies are found and matched again, clean photos are untouched,
and a restored face keeps the flag that says its photo was poor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facetrace.evaluation.datasets import read_pairs
from facetrace.evaluation.embeddings import select_subject_face
from facetrace.vision import degradations
from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.options import AnalyzerOptions

PHOTOS = 12
THRESHOLD_1E3 = 0.3674  # the default pack's similarity at a false-match rate of 1e-3 (docs/robustness.md)


@pytest.fixture(scope="module")
def analyzers() -> Iterator[dict[str, OnnxFaceAnalyzer]]:
    yield {
        mode: open_analyzer(
            AnalyzerOptions(threads=2, rotation_fallback="off", restoration=mode, min_detection_score=None)
        )
        for mode in ("off", "auto")
    }


def _matches(
    analyzer: OnnxFaceAnalyzer, lfw: Path, condition: str, strength: float
) -> tuple[int, int, list[tuple[str, ...]]]:
    """(faces found, faces matching their clean selves at the 1e-3 threshold, their flags) over PHOTOS photos."""
    clean_analyzer = open_analyzer(
        AnalyzerOptions(threads=2, rotation_fallback="off", restoration="off", min_detection_score=None)
    )
    paths = list(dict.fromkeys(pair.path_b for pair in read_pairs(lfw / "pairs_resolved.csv")))[:PHOTOS]
    found = matched = 0
    flags: list[tuple[str, ...]] = []
    for index, path in enumerate(paths):
        bgr = decode_image((lfw / path).read_bytes(), path)
        clean = select_subject_face(clean_analyzer.analyze_array(bgr, path))
        assert clean is not None
        degraded = degradations.degrade(bgr, condition, strength, clean.detection.landmarks, seed=index)
        face = select_subject_face(analyzer.analyze_array(degraded, f"{path}#{condition}"))
        if face is None:
            continue
        found += 1
        matched += float(face.embedding.vector @ clean.embedding.vector) >= THRESHOLD_1E3
        flags.append(face.quality.flags)
    return found, matched, flags


@pytest.mark.slow
def test_grainy_photos_are_found_and_matched_again(analyzers: dict[str, OnnxFaceAnalyzer], lfw: Path) -> None:
    plain_found, plain_matched, _ = _matches(analyzers["off"], lfw, "noise", 40.0)
    found, matched, flags = _matches(analyzers["auto"], lfw, "noise", 40.0)
    assert found >= PHOTOS - 1 and matched >= PHOTOS - 2
    assert matched > plain_matched + 3 and found > plain_found
    # Quality is read from the photo as it came: the restored faces still say their photo was noisy.
    assert sum("noisy" in f for f in flags) >= found - 1


@pytest.mark.slow
def test_flat_photos_match_better(analyzers: dict[str, OnnxFaceAnalyzer], lfw: Path) -> None:
    _, plain_matched, _ = _matches(analyzers["off"], lfw, "low_contrast", 0.2)
    _, matched, _ = _matches(analyzers["auto"], lfw, "low_contrast", 0.2)
    assert matched >= PHOTOS - 1 and matched >= plain_matched


@pytest.mark.slow
def test_clean_photos_are_analysed_exactly_as_without_it(analyzers: dict[str, OnnxFaceAnalyzer], lfw: Path) -> None:
    paths = list(dict.fromkeys(pair.path_a for pair in read_pairs(lfw / "pairs_resolved.csv")))[:PHOTOS]
    for path in paths:
        bgr = decode_image((lfw / path).read_bytes(), path)
        plain = analyzers["off"].analyze_array(bgr, path).faces
        restored = analyzers["auto"].analyze_array(bgr, path).faces
        assert len(plain) == len(restored)
        for a, b in zip(plain, restored, strict=True):
            np.testing.assert_array_equal(a.embedding.vector, b.embedding.vector)
            assert a.quality == b.quality
