"""One photo cannot exhaust the service: huge photos are analysed reduced, a bounded number at a time
(vision/images.py decode_reduced, vision/analyzer.py; docs/security.md)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.options import AnalyzerOptions


@pytest.fixture(scope="module")
def analyzer() -> Iterator[OnnxFaceAnalyzer]:
    yield open_analyzer()


def test_a_huge_photo_is_analysed_reduced_with_its_boxes_in_its_own_pixels(
    datasets: Path, analyzer: OnnxFaceAnalyzer
) -> None:
    """A 49-megapixel photo once cost 27 s and 1.3 GB per search; it is analysed at max_analysis_pixels now."""
    face = Image.open(datasets / "face_recognition_examples/examples/knn_examples/test/obama1.jpg").convert("RGB")
    face = face.resize((face.width * 3, face.height * 3))
    canvas = Image.new("RGB", (7000, 7000), (120, 120, 120))
    canvas.paste(face, (3000, 3000))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    reduced = analyzer.analyze(buffer.getvalue(), "huge.jpg")
    whole = OnnxFaceAnalyzer(analyzer.pack, AnalyzerOptions(max_analysis_pixels=60_000_000)).analyze(
        buffer.getvalue(), "huge.jpg"
    )
    assert (reduced.width, reduced.height) == (whole.width, whole.height) == (7000, 7000)
    assert len(reduced.faces) == len(whole.faces) == 1
    box, reference = reduced.faces[0].detection.box, whole.faces[0].detection.box
    assert box.iou(reference) > 0.85 and 3000 < box.x1 < box.x2 < 7000
    landmarks = np.asarray(reduced.faces[0].detection.landmarks)
    # The detector sees both at the same 1280-px scale; the two resizing paths move the points by a few percent.
    assert np.abs(landmarks - np.asarray(whole.faces[0].detection.landmarks)).max() < 0.1 * reference.width
    assert float(reduced.faces[0].embedding.vector @ whole.faces[0].embedding.vector) > 0.9


def test_photos_are_admitted_a_bounded_number_at_a_time(analyzer: OnnxFaceAnalyzer, datasets: Path) -> None:
    """Concurrent requests wait their turn instead of decoding every large probe at once."""
    bounded = OnnxFaceAnalyzer(analyzer.pack, AnalyzerOptions(concurrent_analyses=2))
    inside = 0
    most = 0
    guard = threading.Lock()
    real = bounded._prepare_admitted

    def counting(data: bytes, source: str) -> object:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.2)
        try:
            return real(data, source)
        finally:
            with guard:
                inside -= 1

    bounded._prepare_admitted = counting  # type: ignore[method-assign]
    photo = (datasets / "face_recognition_examples/examples/knn_examples/test/obama1.jpg").read_bytes()
    threads = [threading.Thread(target=bounded.analyze, args=(photo, f"p{i}")) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert most == 2
