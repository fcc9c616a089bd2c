"""The subject rule on LFW: in a photo with several faces, which one does a photo's label go to?

    python bench/subject_rule.py [--limit N] [--boxes boxes.json] [--dominance 1.5,2,3] [--min-centrality 0.1,0.25]
        [--group-photos ../shared/datasets] [--pack ID --data DIR] [--json]

LFW's photos are cut around the labelled person, so that person's face is at the photo's centre: the "centre face"
is the detected face whose box contains the centre (the nearest such, if several do). Every LFW photo (the first
--limit of manifest.csv, if given) is detected as ingest detects it (the engine's settings: restoration, then the
detector at the minimum detection score; FACETRACE_* variables, else the defaults); photos with two or more faces
are kept. For each pair of constants of core/subject.py's rule (DOMINANCE x MIN_CENTRALITY) the rule is applied to
them, and the table counts the photos where it names the centre face (right), another face (wrong: the label would go
to a bystander), or none (ambiguous: no face gets the label). Photos with no face containing the centre are counted
apart ("no centre face": the detector missed the subject, or the crop is off) and, for them, how often the rule still
names a face. --boxes keeps the detections in a JSON file and reads them from it on the next run.

LFW cannot show the rule's other risk, a photo whose subject stands off-centre: its crops are centred on the subject
by construction, so a strong centrality weight always looks right there. --group-photos applies each rule to the
shared group photos too (group_photos/index.csv), photos of several people with no one subject, and lists the face
it names in each: a label given to such a photo would go to that face.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from facetrace.core.types import BoundingBox
from facetrace.evaluation.harness import pipeline_settings
from facetrace.vision.analyzer import open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.restoration import restore

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = REPO_ROOT.parent / "shared" / "datasets" / "lfw"


@dataclass(frozen=True)
class Photo:
    path: str
    width: int
    height: int
    boxes: tuple[tuple[float, float, float, float], ...]  # detector order


@dataclass(frozen=True)
class RuleResult:
    dominance: float
    min_centrality: float
    photos: int  # with 2+ faces and a centre face
    right: int
    wrong: int
    ambiguous: int
    no_centre_face: int
    named_without_centre_face: int  # of those, photos where the rule still named a face


def centre_face(photo: Photo) -> int | None:
    """The face whose box contains the photo's centre (the nearest such), or None."""
    cx, cy = photo.width / 2, photo.height / 2
    inside = [
        (math.hypot((x1 + x2) / 2 - cx, (y1 + y2) / 2 - cy), i)
        for i, (x1, y1, x2, y2) in enumerate(photo.boxes)
        if x1 <= cx <= x2 and y1 <= cy <= y2
    ]
    return min(inside)[1] if inside else None


def subject(photo: Photo, dominance: float, min_centrality: float) -> int | None:
    """core/subject.py's subject_index with these constants (written out so that a grid can be tried in one run)."""
    boxes = [BoundingBox(*box) for box in photo.boxes]
    half = math.hypot(photo.width / 2, photo.height / 2)

    def score(box: BoundingBox) -> float:
        distance = math.hypot((box.x1 + box.x2) / 2 - photo.width / 2, (box.y1 + box.y2) / 2 - photo.height / 2)
        centrality = max(min_centrality, 1.0 - (1.0 - min_centrality) * min(distance / half, 1.0))
        return box.area * centrality

    scores = [score(box) for box in boxes]
    order = sorted(range(len(boxes)), key=lambda i: scores[i], reverse=True)
    return order[0] if scores[order[0]] >= dominance * scores[order[1]] else None


def detect_all(lfw: Path, limit: int | None, pack: str | None, data: Path | None) -> tuple[list[Photo], int, float]:
    """Photos with two or more faces, how many photos were detected, and the seconds it took."""
    options = pipeline_settings(data, pack=pack).analyzer_options()
    analyzer = open_analyzer(options)
    with (lfw / "manifest.csv").open(newline="") as handle:
        paths = [row["path"] for row in csv.DictReader(handle)]
    if limit is not None:
        paths = paths[:limit]
    started = time.perf_counter()
    photos: list[Photo] = []
    for relative in paths:
        bgr = decode_image((lfw / relative).read_bytes(), relative)
        restored, _ = restore(bgr, options.restoration)
        detections = analyzer.detect(restored)
        if len(detections) >= 2:
            boxes = tuple(d.box.as_tuple() for d in detections)
            photos.append(Photo(relative, int(bgr.shape[1]), int(bgr.shape[0]), boxes))
    return photos, len(paths), time.perf_counter() - started


def group_photos(datasets: Path, pack: str | None, data: Path | None) -> list[Photo]:
    """The shared datasets' group photos (group_photos/index.csv, globs expanded) in which 2+ faces are detected."""
    options = pipeline_settings(data, pack=pack).analyzer_options()
    analyzer = open_analyzer(options)
    with (datasets / "group_photos" / "index.csv").open(newline="") as handle:
        paths = sorted({found for row in csv.DictReader(handle) for found in datasets.glob(row["path"].split()[0])})
    photos: list[Photo] = []
    for path in paths:
        bgr = decode_image(path.read_bytes(), str(path))
        restored, _ = restore(bgr, options.restoration)
        detections = analyzer.detect(restored)
        if len(detections) >= 2:
            boxes = tuple(d.box.as_tuple() for d in detections)
            photos.append(Photo(str(path.relative_to(datasets)), int(bgr.shape[1]), int(bgr.shape[0]), boxes))
    return photos


def evaluate(photos: list[Photo], dominance: float, min_centrality: float) -> RuleResult:
    right = wrong = ambiguous = no_centre = named_anyway = 0
    for photo in photos:
        chosen = subject(photo, dominance, min_centrality)
        truth = centre_face(photo)
        if truth is None:
            no_centre += 1
            named_anyway += chosen is not None
        elif chosen is None:
            ambiguous += 1
        elif chosen == truth:
            right += 1
        else:
            wrong += 1
    counted = len(photos) - no_centre
    return RuleResult(dominance, min_centrality, counted, right, wrong, ambiguous, no_centre, named_anyway)


def _share(count: int, total: int) -> str:
    return f"{count:5d} {100 * count / total:5.1f}%" if total else f"{count:5d}   n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW folder with manifest.csv")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos of the manifest")
    parser.add_argument("--boxes", type=Path, default=None, help="JSON file caching the detections")
    parser.add_argument("--dominance", default="1.5,2,3", help="comma-separated DOMINANCE values to try")
    parser.add_argument("--min-centrality", default="0.1,0.25,0.5,1", help="comma-separated MIN_CENTRALITY values")
    parser.add_argument("--pack", default=None, help="model pack id or folder (default: the built-in pack)")
    parser.add_argument("--data", type=Path, default=None, help="data directory holding added packs (FACETRACE_DATA)")
    parser.add_argument(
        "--group-photos",
        type=Path,
        default=None,
        metavar="DATASETS",
        help="also apply each rule to the group photos of this datasets folder (group_photos/index.csv) and list the "
        "face it names in each (a group photo has no one subject: every face named there is a risk)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON record per line instead of a table")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    if args.boxes is not None and args.boxes.exists():
        cached = json.loads(args.boxes.read_text())
        photos = [Photo(p["path"], p["width"], p["height"], tuple(map(tuple, p["boxes"]))) for p in cached["photos"]]
        detected, seconds = int(cached["detected"]), float(cached["seconds"])
    else:
        photos, detected, seconds = detect_all(args.lfw, args.limit, args.pack, args.data)
        if args.boxes is not None:
            record = {"detected": detected, "seconds": seconds, "photos": [asdict(p) for p in photos]}
            args.boxes.write_text(json.dumps(record))
    faces = [len(p.boxes) for p in photos]
    print(
        f"{detected} photos detected in {seconds:.0f} s; {len(photos)} with 2+ faces "
        f"({sum(n == 2 for n in faces)} with 2, {sum(n >= 3 for n in faces)} with 3 or more)",
        file=sys.stderr,
    )
    results = [
        evaluate(photos, float(dominance), float(minimum))
        for dominance in args.dominance.split(",")
        for minimum in args.min_centrality.split(",")
    ]
    groups = group_photos(args.group_photos, args.pack, args.data) if args.group_photos is not None else []
    named = {
        (r.dominance, r.min_centrality): [
            (photo.path, subject(photo, r.dominance, r.min_centrality), len(photo.boxes)) for photo in groups
        ]
        for r in results
    }
    if args.json:
        for result in results:
            picks = named[(result.dominance, result.min_centrality)]
            print(json.dumps(asdict(result) | {"group_photos_named": [[p, i] for p, i, _ in picks if i is not None]}))
        return 0
    print("dominance  min_centrality  photos  right           wrong         ambiguous       no centre face (named)")
    for r in results:
        right, wrong, ambiguous = (_share(n, r.photos) for n in (r.right, r.wrong, r.ambiguous))
        print(
            f"{r.dominance:9.2f}  {r.min_centrality:14.2f}  {r.photos:6d}  {right}    {wrong}  {ambiguous}    "
            f"{r.no_centre_face} ({r.named_without_centre_face})"
        )
    if groups:
        print(f"\ngroup photos with 2+ faces: {len(groups)}; the face each rule names in them (- for none)")
        for r in results:
            picks = named[(r.dominance, r.min_centrality)]
            listed = ", ".join(f"{Path(p).name}:{'-' if i is None else i}/{n}" for p, i, n in picks)
            count = sum(i is not None for _, i, _ in picks)
            print(f"{r.dominance:9.2f}  {r.min_centrality:14.2f}  {count} named: {listed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
