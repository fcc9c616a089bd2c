"""How a pack's detection threshold and subject-face fallback floor were chosen, and what they find.

    python bench/detection_thresholds.py [--pack ID --data DIR] [--lfw-limit N] [--turned-n N] [--json] [--out F]

The pack's manifest carries both (detector.score_threshold, detector.fallback_score; docs/models.md). The rule:

- threshold: every LFW photo's subject face scores at least it, and no dog face in dlib's dogs.jpg does. The
  feasible values lie between the best dog score and the lowest LFW subject score; the threshold is the lowest
  multiple of 0.05 above the dogs (the lowest keeps the most hard real faces elsewhere: bystanders, profiles).
- floor: a photo with no face at the threshold keeps its best upright face scoring at least the floor whose aligned
  crop shows eyes (vision/quality.py, eyes_visible). The table below gives, for each candidate floor, the one-person
  photos of the shared datasets it rescues and the faceless inputs where it would keep a face: dogs.jpg and every
  window of dlib's annotated group photos that overlaps no annotated face (a face there is a false face). The floor
  is the lowest candidate (a multiple of 0.05) at which no faceless input keeps a face.

Measured on the detector's upright pass alone (rotation fallback off), run down to PROBE_FLOOR; the subject of a
photo is its detection with the best score x centrality (core/subject.py), as LFW crops are centred on it. Then the
pipeline as the engine runs it (the pack's threshold, rotation fallback auto) with the subject-face fallback off and
on: how many one-face photos yield a face, split frontal / profile by the quality's yaw estimate. Last, the order of
the two fallbacks: LFW photos turned 90 and 180 degrees, the rotation sweep first (as built) against the low floor
first (an upright face the floor finds ends the search, no sweep), judged by whether the turned photo's subject still
matches the upright photo's (cosine >= the pack's similarity at FMR 1e-3) and by the detection passes run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.core.subject import centrality
from facetrace.core.types import BoundingBox, Detection
from facetrace.search.calibration import ScoreCalibrator
from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.detectors.rotation import rotate_expanded
from facetrace.vision.images import decode_image
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.packs import load_pack
from facetrace.vision.quality import MAX_FRONTAL_YAW_DEG, estimate_yaw_deg, eyes_visible

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
# The upright pass runs down to this score, far below any threshold considered.
PROBE_FLOOR = 0.3
THRESHOLD_STEP = 0.05
CANDIDATE_FLOORS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)
FALSE_MATCH_RATE = 1e-3
# Faceless windows of dlib's annotated photos: squares of this share of the shorter side, every half window.
WINDOW_SHARE = 0.25
# Windows keep this margin (share of a box's size) away from every annotated face, ignored ones included.
BOX_MARGIN = 0.5
# The frontal comparison group: subjects turned less than this.
FRONTAL_YAW_DEG = 15.0
Bgr = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Candidate:
    """One upright detection: its score and whether its aligned crop shows eyes."""

    score: float
    eyes: bool
    yaw_deg: float


@dataclass(frozen=True)
class Photo:
    name: str  # the photo's path, or a window's name
    candidates: tuple[Candidate, ...]  # best score first
    subject: Candidate | None = None  # the face the photo is about (LFW, one-person portraits)


# ---- the upright pass --------------------------------------------------------------------------------------------


def probe_analyzer(pack: str | None, data: Path | None) -> OnnxFaceAnalyzer:
    options = AnalyzerOptions(
        pack=pack, data_dir=data, min_detection_score=PROBE_FLOOR, rotation_fallback="off", subject_fallback=False
    )
    return open_analyzer(options)


def upright(analyzer: OnnxFaceAnalyzer, bgr: Bgr, name: str, *, subject: bool) -> Photo:
    detections = analyzer.detect(bgr)
    candidates = [_candidate(analyzer, bgr, d) for d in detections]
    main = None
    if subject and detections:
        height, width = bgr.shape[:2]
        # The best score discounted by the distance from the centre: a large low-score box must not beat the face.
        index = max(
            range(len(detections)), key=lambda i: detections[i].score * centrality(detections[i].box, width, height)
        )
        main = candidates[index]
    return Photo(name, tuple(sorted(candidates, key=lambda c: c.score, reverse=True)), main)


def _candidate(analyzer: OnnxFaceAnalyzer, bgr: Bgr, detection: Detection) -> Candidate:
    crop = analyzer.align(bgr, detection)
    yaw = estimate_yaw_deg(np.asarray(detection.landmarks, dtype=np.float64))
    return Candidate(round(detection.score, 4), eyes_visible(crop), round(yaw, 1))


def read(path: Path) -> Bgr:
    return decode_image(path.read_bytes(), str(path))


def lfw_paths(datasets: Path, limit: int | None) -> list[Path]:
    with (datasets / "lfw" / "manifest.csv").open(newline="") as handle:
        rows = sorted(row["path"] for row in csv.DictReader(handle))
    if limit is not None and limit < len(rows):
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit)]
    return [datasets / "lfw" / row for row in rows]


def portrait_paths(datasets: Path) -> list[Path]:
    """The one-person photos of the deepface and face_recognition sets: their manifests less the group photos."""
    paths: list[Path] = []
    for folder in ("deepface_testset", "face_recognition_examples"):
        root = datasets / folder
        with (root / "group_photos.csv").open(newline="") as handle:
            groups = {row["path"] for row in csv.DictReader(handle)}
        with (root / "manifest.csv").open(newline="") as handle:
            paths.extend(root / row["path"] for row in csv.DictReader(handle) if row["path"] not in groups)
    return paths


def faceless_windows(datasets: Path) -> list[tuple[str, Bgr]]:
    """Square windows of dlib's annotated photos that stay clear of every annotated face (a margin around each)."""
    root = datasets / "dlib_faces_detection"
    boxes: dict[str, list[BoundingBox]] = {}
    with (root / "boxes.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
            mx, my = w * BOX_MARGIN, h * BOX_MARGIN
            boxes.setdefault(row["path"], []).append(BoundingBox(x - mx, y - my, x + w + mx, y + h + my))
    windows: list[tuple[str, Bgr]] = []
    for name, faces in sorted(boxes.items()):
        bgr = read(root / name)
        height, width = bgr.shape[:2]
        side = int(min(height, width) * WINDOW_SHARE)
        stride = max(1, side // 2)
        for y in range(0, height - side + 1, stride):
            for x in range(0, width - side + 1, stride):
                window = BoundingBox(x, y, x + side, y + side)
                if all(_disjoint(window, face) for face in faces):
                    windows.append((f"{name}@{x},{y}", np.ascontiguousarray(bgr[y : y + side, x : x + side])))
    return windows


def _disjoint(a: BoundingBox, b: BoundingBox) -> bool:
    return a.x2 <= b.x1 or b.x2 <= a.x1 or a.y2 <= b.y1 or b.y2 <= a.y1


# ---- the rule ----------------------------------------------------------------------------------------------------


def choose_threshold(lfw: Sequence[Photo], dogs: Photo) -> dict[str, Any]:
    subject_scores = [p.subject.score for p in lfw if p.subject is not None]
    best_dog = max((c.score for c in dogs.candidates), default=0.0)
    lowest_face = min(subject_scores) if subject_scores else 1.0
    threshold = (math.floor(best_dog / THRESHOLD_STEP + 1e-9) + 1) * THRESHOLD_STEP
    return {
        "best_dog_score": best_dog,
        "lowest_lfw_subject_score": lowest_face,
        "lfw_photos_without_a_candidate": sum(p.subject is None for p in lfw),
        "threshold": round(threshold, 4),
        "feasible": bool(best_dog < threshold <= lowest_face),
    }


def _fallback_keeps(photo: Photo, threshold: float, floor: float) -> bool:
    """Whether the fallback keeps a face in a photo with no face at the threshold (upright pass, eye check)."""
    return any(floor <= c.score < threshold and c.eyes for c in photo.candidates)


def floor_table(
    threshold: float,
    lfw: Sequence[Photo],
    portraits: Sequence[Photo],
    negatives: Sequence[Photo],
    floors: Iterable[float],
) -> list[dict[str, Any]]:
    """Per floor: one-person photos without a face at the threshold that it rescues, and faceless inputs where it
    keeps a face (with the eye check, and without it)."""
    unfound = [p for p in [*lfw, *portraits] if not any(c.score >= threshold for c in p.candidates)]
    faceless = [p for p in negatives if not any(c.score >= threshold for c in p.candidates)]
    rows: list[dict[str, Any]] = []
    for floor in floors:
        rows.append(
            {
                "floor": floor,
                "one_person_photos_without_a_face": len(unfound),
                "rescued": sum(_fallback_keeps(p, threshold, floor) for p in unfound),
                "faceless_inputs": len(faceless),
                "false_faces": sum(_fallback_keeps(p, threshold, floor) for p in faceless),
                "false_faces_without_eye_check": sum(
                    any(floor <= c.score < threshold for c in p.candidates) for p in faceless
                ),
            }
        )
    return rows


def choose_floor(rows: Sequence[dict[str, Any]]) -> float | None:
    """The lowest candidate floor at which no faceless input keeps a face."""
    clean = [row["floor"] for row in rows if row["false_faces"] == 0]
    return min(clean) if clean else None


def score_summary(lfw: Sequence[Photo], threshold: float) -> dict[str, Any]:
    scores = sorted(p.subject.score for p in lfw if p.subject is not None)
    if not scores:
        return {"photos": len(lfw)}

    def percentile(q: float) -> float:
        return scores[min(len(scores) - 1, int(q * len(scores)))]

    profiles = [p for p in lfw if p.subject is not None and abs(p.subject.yaw_deg) > MAX_FRONTAL_YAW_DEG]
    return {
        "photos": len(lfw),
        "min": scores[0],
        "p0.1": percentile(0.001),
        "p1": percentile(0.01),
        "median": statistics.median(scores),
        "below_threshold": sum(s < threshold for s in scores),
        "subjects_without_eyes": sum(1 for p in lfw if p.subject is not None and not p.subject.eyes),
        "profile_subjects": len(profiles),
        "profile_min": min((p.subject.score for p in profiles if p.subject is not None), default=None),
    }


# ---- the pipeline, fallback off and on ----------------------------------------------------------------------------


def pipeline_yield(
    pack: str | None, data: Path | None, groups: dict[str, Sequence[Path]], dogs: Path
) -> list[dict[str, Any]]:
    rows = []
    for fallback in (False, True):
        analyzer = open_analyzer(AnalyzerOptions(pack=pack, data_dir=data, subject_fallback=fallback))
        for label, paths in groups.items():
            found = flagged = 0
            for path in paths:
                faces = analyzer.analyze(path.read_bytes(), str(path)).faces
                found += bool(faces)
                flagged += any("low_detection_score" in f.quality.flags for f in faces)
            rows.append(
                {"fallback": fallback, "photos": label, "n": len(paths), "with_a_face": found, "flagged": flagged}
            )
        for mode in ("auto", "off"):
            strict = open_analyzer(
                AnalyzerOptions(pack=pack, data_dir=data, subject_fallback=fallback, rotation_fallback=mode)
            )
            faces = strict.analyze(dogs.read_bytes(), str(dogs)).faces
            rows.append(
                {
                    "fallback": fallback,
                    "photos": f"dogs.jpg, rotation {mode}",
                    "n": 1,
                    "faces": [[round(f.detection.score, 3), round(f.detection.box.width)] for f in faces],
                }
            )
    return rows


def dlib_recall(
    pack: str | None, data: Path | None, datasets: Path, scores: Sequence[float | None]
) -> list[dict[str, Any]]:
    """Annotated faces of dlib's detection photos found at IoU >= 0.5 (ignored boxes left out), per threshold
    (None: the pack's), by the pipeline's detection (rotation fallback auto, subject-face fallback on)."""
    root = datasets / "dlib_faces_detection"
    truth: dict[str, list[BoundingBox]] = {}
    with (root / "boxes.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["ignore"] != "1":
                x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
                truth.setdefault(row["path"], []).append(BoundingBox(x, y, x + w, y + h))
    rows = []
    for score in scores:
        analyzer = open_analyzer(AnalyzerOptions(pack=pack, data_dir=data, min_detection_score=score))
        found = total = 0
        for name, boxes in truth.items():
            detections = analyzer.detect(read(root / name))
            total += len(boxes)
            found += sum(any(box.iou(d.box) >= 0.5 for d in detections) for box in boxes)
        rows.append({"min_detection_score": analyzer.min_detection_score, "found": found, "faces": total})
    return rows


# ---- the order of the two fallbacks --------------------------------------------------------------------------------


def main_vector(analyzer: OnnxFaceAnalyzer, bgr: Bgr) -> tuple[npt.NDArray[np.float32] | None, int, bool]:
    report = analyzer.detect_report(bgr)
    if not report.detections:
        return None, len(report.passes), False
    height, width = bgr.shape[:2]
    main = max(report.detections, key=lambda d: d.box.area * centrality(d.box, width, height))
    return analyzer.embed_aligned([analyzer.align(bgr, main)])[0], len(report.passes), report.fallback


def fallback_order(
    pack: str | None, data: Path | None, paths: Sequence[Path], angles: Sequence[int], similarity: float
) -> list[dict[str, Any]]:
    """Rotation first (as built) against the floor first, on turned LFW photos (one per person)."""
    sweeping = open_analyzer(AnalyzerOptions(pack=pack, data_dir=data))
    upright_only = open_analyzer(AnalyzerOptions(pack=pack, data_dir=data, rotation_fallback="off"))
    photos = [read(p) for p in paths]
    references = [main_vector(sweeping, bgr)[0] for bgr in photos]
    rows = []
    for angle in angles:
        tally = {"rotation_first": [0, 0, 0], "floor_first": [0, 0, 0]}  # matched, passes, kept by the floor
        for bgr, reference in zip(photos, references, strict=True):
            turned = rotate_expanded(bgr, float(angle))[0] if angle else bgr
            first = main_vector(sweeping, turned)
            alone = main_vector(upright_only, turned)
            # Floor first: a face the floor finds upright ends the search (no sweep); otherwise as built.
            second = alone if alone[2] else first
            for key, (vector, passes, by_floor) in (("rotation_first", first), ("floor_first", second)):
                matched = vector is not None and reference is not None and float(reference @ vector) >= similarity
                tally[key][0] += matched
                tally[key][1] += passes
                tally[key][2] += by_floor
        for key, (matched, passes, by_floor) in tally.items():
            rows.append(
                {
                    "order": key,
                    "angle": angle,
                    "photos": len(photos),
                    "matched": matched,
                    "kept_by_the_floor": by_floor,
                    "mean_passes": round(passes / len(photos), 2),
                }
            )
    return rows


def one_per_person(datasets: Path, n: int) -> list[Path]:
    first: dict[str, str] = {}
    with (datasets / "lfw" / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            first.setdefault(row["identity"], row["path"])
    names = sorted(first)
    step = max(1, len(names) // n)
    return [datasets / "lfw" / first[name] for name in names[::step][:n]]


# ---- main --------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="the shared datasets folder")
    parser.add_argument("--pack", default=None, help="model pack id or folder (default: the built-in pack)")
    parser.add_argument("--data", type=Path, default=None, help="data directory holding added packs")
    parser.add_argument("--lfw-limit", type=int, default=None, help="LFW photos measured, spread evenly (default all)")
    parser.add_argument("--turned-n", type=int, default=100, help="LFW photos (one per person) for the order test")
    parser.add_argument("--angles", default="0,90,180", help="turns for the order test")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON object to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    datasets: Path = args.datasets
    pack = load_pack(args.pack, args.data)
    started = time.perf_counter()
    probe = probe_analyzer(args.pack, args.data)
    dogs_path = datasets / "dlib_faces_detection" / "images" / "dogs.jpg"
    dogs = upright(probe, read(dogs_path), "dogs.jpg", subject=False)
    lfw = [upright(probe, read(p), str(p), subject=True) for p in lfw_paths(datasets, args.lfw_limit)]
    portraits = [upright(probe, read(p), str(p), subject=True) for p in portrait_paths(datasets)]
    negatives = [dogs] + [upright(probe, bgr, name, subject=False) for name, bgr in faceless_windows(datasets)]
    sys.stderr.write(f"upright passes measured in {time.perf_counter() - started:.0f} s\n")

    rule = choose_threshold(lfw, dogs)
    threshold = pack.detector.score_threshold
    profile_lfw = [Path(p.name) for p in lfw if _is_profile(p)]
    frontal_lfw = [Path(p.name) for p in lfw if p.subject is not None and abs(p.subject.yaw_deg) < FRONTAL_YAW_DEG]
    frontal_lfw = frontal_lfw[:: max(1, len(frontal_lfw) // max(1, len(profile_lfw)))][: len(profile_lfw)]
    portrait_list = portrait_paths(datasets)
    portrait_profiles = [p for p, photo in zip(portrait_list, portraits, strict=True) if _is_profile(photo)]
    groups = {
        "LFW, profile subject (|yaw| > 45)": profile_lfw,
        "LFW, frontal subject (|yaw| < 15), as many": frontal_lfw,
        "deepface + face_recognition one-person photos": portrait_list,
        "  of which profile": portrait_profiles,
    }
    floors = floor_table(threshold, lfw, portraits, negatives, CANDIDATE_FLOORS)
    calibration = pack.calibration or load_pack(None).calibration
    similarity = ScoreCalibrator(calibration).similarity_at(FALSE_MATCH_RATE) if calibration else 0.367
    report = {
        "pack": pack.id,
        "manifest": {"score_threshold": threshold, "fallback_score": pack.detector.fallback_score},
        "dogs": [dataclasses.asdict(c) for c in dogs.candidates],
        "portraits_below_0.85": [
            {
                "photo": Path(p.name).name,
                "score": p.subject.score if p.subject else None,
                "eyes": bool(p.subject and p.subject.eyes),
            }
            for p in portraits
            if p.subject is None or p.subject.score < 0.85
        ],
        "lfw_subject_scores": score_summary(lfw, threshold),
        "rule": rule,
        "floors": floors,
        "chosen_floor": choose_floor(floors),
        "pipeline": pipeline_yield(args.pack, args.data, groups, dogs_path),
        "dlib_recall": dlib_recall(args.pack, args.data, datasets, [None, 0.6]),
        "order": fallback_order(
            args.pack,
            args.data,
            one_per_person(datasets, args.turned_n),
            [int(a) for a in args.angles.split(",")],
            similarity,
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print(report)
    return 0


def _is_profile(photo: Photo) -> bool:
    return photo.subject is not None and abs(photo.subject.yaw_deg) > MAX_FRONTAL_YAW_DEG


def _print(report: dict[str, Any]) -> None:
    print(f"pack {report['pack']}: manifest {report['manifest']}")
    print(f"dogs.jpg upright candidates (score, eyes visible): {[(c['score'], c['eyes']) for c in report['dogs']]}")
    print(f"LFW subject scores: {report['lfw_subject_scores']}")
    print(f"threshold rule: {report['rule']}")
    print(f"one-person portraits scoring below 0.85: {report['portraits_below_0.85']}")
    print("floor  rescued/unfound  false faces/faceless inputs (without the eye check)")
    for row in report["floors"]:
        print(
            f"{row['floor']:<6} {row['rescued']:>3}/{row['one_person_photos_without_a_face']:<12} "
            f"{row['false_faces']:>3}/{row['faceless_inputs']} ({row['false_faces_without_eye_check']})"
        )
    print(f"floor rule: the lowest floor without a false face: {report['chosen_floor']}")
    print("pipeline (pack threshold, rotation auto): subject-face fallback off / on")
    for row in report["pipeline"]:
        print("  ", row)
    print(f"dlib recall at IoU 0.5: {report['dlib_recall']}")
    print("order of the fallbacks on turned LFW photos")
    for row in report["order"]:
        print("  ", row)
    print(f"{report['seconds']} s")


if __name__ == "__main__":
    raise SystemExit(main())
