"""A small real gallery for the service tests: face_recognition's example people, one probe held out."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from facetrace.core.types import BoundingBox, Detection

GALLERY = [
    ("examples/knn_examples/train/obama/obama.jpg", "obama"),
    ("examples/knn_examples/train/obama/obama2.jpg", "obama"),
    ("tests/test_images/obama3.jpg", "obama"),
    ("examples/knn_examples/train/biden/biden.jpg", "biden"),
    ("examples/knn_examples/train/biden/biden2.jpg", "biden"),
    ("examples/knn_examples/train/alex_lacamoire/img1.jpg", "alex_lacamoire"),
    ("examples/knn_examples/train/kit_harington/john1.jpeg", "kit_harington"),
    ("examples/knn_examples/train/rose_leslie/img1.jpg", "rose_leslie"),
    ("examples/lin-manuel-miranda.png", "lin_manuel_miranda"),
]
PROBE = "examples/knn_examples/test/obama1.jpg"
OTHER_PROBE = "examples/knn_examples/test/johnsnow_test1.jpg"


def assert_rate_as_stated(evidence: dict[str, Any]) -> None:
    """A JSON evidence's false-match rate is the one its sentence ("about 1 in N strangers", N to two figures) and
    its calibration note (the rate to three figures) state, at full precision: a strong hit's rate is never 0."""
    rate = evidence["false_match_rate"]
    assert rate > 0
    said = re.search(r"(?:about|fewer than) 1 in ([\d.,]+)( million| billion)? strangers", evidence["verdict"])
    assert said, evidence["verdict"]
    scale = {"": 1, " million": 1e6, " billion": 1e9}[said.group(2) or ""]
    assert float(said.group(1).replace(",", "")) * scale == pytest.approx(1 / rate, rel=0.05)
    noted = re.search(r"False-match rate: (?:at most )?([\d.e+-]+) per comparison", evidence["detail"])
    assert noted, evidence["detail"]
    assert float(noted.group(1)) == pytest.approx(rate, rel=5e-3)


@dataclass(frozen=True)
class SmallGallery:
    root: Path
    manifest: Path
    probe: Path  # obama, not in the gallery
    other_probe: Path  # kit_harington, not in the gallery

    def paths_of(self, identity: str) -> list[Path]:
        return [self.root / path for path, who in GALLERY if who == identity]


@pytest.fixture(scope="session")
def small_gallery(fr_examples: Path, tmp_path_factory: pytest.TempPathFactory) -> SmallGallery:
    manifest = tmp_path_factory.mktemp("gallery") / "gallery.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label", "source_page", "captured_at"])
        for path, identity in GALLERY:
            writer.writerow([fr_examples / path, identity, f"https://example.org/{identity}", "2020-05-01"])
    return SmallGallery(fr_examples, manifest, fr_examples / PROBE, fr_examples / OTHER_PROBE)


@pytest.fixture(scope="session")
def dlib_detection_recall(datasets: Path) -> Callable[[Callable[[Path], Sequence[Detection]]], tuple[int, int]]:
    """(found, total) annotated faces of dlib_faces_detection/boxes.csv that a detector finds at IoU >= 0.5."""
    root = datasets / "dlib_faces_detection"
    truth: dict[str, list[BoundingBox]] = defaultdict(list)
    with (root / "boxes.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["ignore"] == "1":
                continue
            x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
            truth[row["path"]].append(BoundingBox(x, y, x + w, y + h))

    def recall(detect: Callable[[Path], Sequence[Detection]]) -> tuple[int, int]:
        found = total = 0
        for path, boxes in truth.items():
            detections = detect(root / path)
            for box in boxes:
                total += 1
                found += any(box.iou(d.box) >= 0.5 for d in detections)
        return found, total

    return recall
