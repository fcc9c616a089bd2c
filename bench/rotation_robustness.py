"""Rotation robustness: does a face turned in plane still match its upright self, and what does looking cost?

    python bench/rotation_robustness.py --n 200 [--modes off,auto,always] [--angles 0,15,30,45,60,75,90,135,180]
        [--pack ID --data DIR] [--json]

Photos: the first photo of every k-th LFW identity (sorted by name), n of them, so no person counts twice. Each is
turned about its centre by every angle on a canvas large enough to keep every pixel (counter-clockwise as displayed)
and analysed by the pipeline (detect -> align -> embed; only the main face is embedded) under each rotation_fallback
mode. A photo is matched at an angle when the main face of the turned photo (the one whose centre is nearest the
image centre) has cosine at least the pack's similarity at a false-match rate of 1e-3 (its calibration, else the
default pack's) with the main face of the same photo analysed upright under the same mode; "found" counts turned
photos with any face at all.

The analyzer is the engine's (its settings: FACETRACE_* variables, else the defaults; the pack's detection threshold)
but for the rotation_fallback mode compared, --pack, --data and --min-score. Cost: milliseconds per upright photo for
a full analysis of every face (median of --repeats passes over the first --cost-n photos, after a warm-up), and the
mean number of detection passes per photo (1 when the upright pass sufficed).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.core.types import Detection
from facetrace.evaluation.harness import pipeline_settings
from facetrace.search.calibration import ScoreCalibrator
from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.detectors.rotation import ROTATION_MODES
from facetrace.vision.images import decode_image
from facetrace.vision.packs import load_pack

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = REPO_ROOT.parent / "shared" / "datasets" / "lfw"
DEFAULT_ANGLES = (0, 15, 30, 45, 60, 75, 90, 135, 180)
FALSE_MATCH_RATE = 1e-3
Bgr = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class AngleResult:
    mode: str
    angle: int
    photos: int
    found: int
    matched: int
    median_cosine: float
    mean_passes: float


@dataclass(frozen=True)
class CostResult:
    mode: str
    photos: int
    ms_per_photo: float
    mean_passes: float


def one_photo_per_person(lfw: Path, n: int) -> list[Path]:
    """The first photo of every k-th identity (sorted), n photos."""
    first: dict[str, str] = {}
    with (lfw / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            first.setdefault(row["identity"], row["path"])
    identities = sorted(first)
    step = max(1, len(identities) // n)
    return [lfw / first[name] for name in identities[::step][:n]]


def turned(bgr: Bgr, degrees: float) -> Bgr:
    """bgr turned about its centre on a canvas keeping every pixel (the test suite's helper does the same)."""
    height, width = bgr.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[0, 2] += new_width / 2 - width / 2
    matrix[1, 2] += new_height / 2 - height / 2
    return np.asarray(cv2.warpAffine(bgr, matrix, (new_width, new_height)), dtype=np.uint8)


def main_face(analyzer: OnnxFaceAnalyzer, bgr: Bgr) -> tuple[npt.NDArray[np.float32] | None, int]:
    """The embedding of the face whose box centre is nearest the image centre (detected, aligned and embedded as
    analyze does, the other faces left out), and the number of detection passes that were run."""
    report = analyzer.detect_report(bgr)
    if not report.detections:
        return None, len(report.passes)
    height, width = bgr.shape[:2]

    def distance(detection: Detection) -> float:
        box = detection.box
        return float(np.hypot((box.x1 + box.x2) / 2 - width / 2, (box.y1 + box.y2) / 2 - height / 2))

    main = min(report.detections, key=distance)
    return analyzer.embed_aligned([analyzer.align(bgr, main)])[0], len(report.passes)


def measure_angles(
    analyzer: OnnxFaceAnalyzer, photos: list[Bgr], angles: list[int], threshold: float
) -> list[AngleResult]:
    upright = [main_face(analyzer, bgr)[0] for bgr in photos]
    results = []
    for angle in angles:
        found = matched = passes = 0
        cosines: list[float] = []
        for bgr, reference in zip(photos, upright, strict=True):
            vector, count = main_face(analyzer, turned(bgr, angle))
            passes += count
            found += vector is not None
            if vector is None or reference is None:
                cosines.append(-1.0)
                continue
            cosine = float(reference @ vector)
            cosines.append(cosine)
            matched += cosine >= threshold
        results.append(
            AngleResult(
                mode=analyzer.options.rotation_fallback,
                angle=angle,
                photos=len(photos),
                found=found,
                matched=matched,
                median_cosine=round(statistics.median(cosines), 3),
                mean_passes=round(passes / len(photos), 2),
            )
        )
    return results


def measure_costs(analyzers: list[OnnxFaceAnalyzer], photos: list[Bgr], repeats: int) -> list[CostResult]:
    """Full analyses (every face) of the upright photos, the common case that must stay cheap. The modes take turns
    within each repeat, so a busy machine slows them alike."""
    for analyzer in analyzers:
        for bgr in photos[:5]:
            analyzer.analyze_array(bgr, "warm-up")
    runs: dict[str, list[float]] = {analyzer.options.rotation_fallback: [] for analyzer in analyzers}
    for _ in range(repeats):
        for analyzer in analyzers:
            start = time.perf_counter()
            for bgr in photos:
                analyzer.analyze_array(bgr, "upright")
            runs[analyzer.options.rotation_fallback].append((time.perf_counter() - start) * 1000 / len(photos))
    results = []
    for analyzer in analyzers:
        passes = sum(len(analyzer.detect_report(bgr).passes) for bgr in photos)
        results.append(
            CostResult(
                mode=analyzer.options.rotation_fallback,
                photos=len(photos),
                ms_per_photo=round(statistics.median(runs[analyzer.options.rotation_fallback]), 2),
                mean_passes=round(passes / len(photos), 3),
            )
        )
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW folder with manifest.csv")
    parser.add_argument("--n", type=int, default=200, help="photos (one per person)")
    parser.add_argument("--angles", default=",".join(map(str, DEFAULT_ANGLES)), help="comma-separated degrees")
    parser.add_argument("--modes", default=",".join(ROTATION_MODES), help="rotation_fallback modes to compare")
    parser.add_argument("--pack", default=None, help="model pack id or folder (default: the built-in pack)")
    parser.add_argument("--data", type=Path, default=None, help="data directory holding added packs (FACETRACE_DATA)")
    parser.add_argument("--min-score", type=float, default=None, help="minimum detection score (default: the setting)")
    parser.add_argument("--repeats", type=int, default=3, help="timing passes over the upright photos")
    parser.add_argument("--cost-n", type=int, default=100, help="upright photos timed (the first of the n)")
    parser.add_argument("--skip-cost", action="store_true", help="do not time the upright photos")
    parser.add_argument("--json", action="store_true", help="one JSON record per line instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = pipeline_settings(args.data, pack=args.pack, min_detection_score=args.min_score)
    options = settings.analyzer_options()
    min_score = options.min_detection_score
    paths = one_photo_per_person(args.lfw, args.n)
    photos = [decode_image(path.read_bytes(), str(path)) for path in paths]
    angles = [int(a) for a in args.angles.split(",")]
    records: list[AngleResult | CostResult] = []
    analyzers = [open_analyzer(dataclasses.replace(options, rotation_fallback=mode)) for mode in args.modes.split(",")]
    # An uncalibrated pack (SCRFD's until calibrated) is judged at the default pack's threshold, as docs/models.md
    # does: the embedder is the same.
    calibration = analyzers[0].pack.calibration or load_pack(None).calibration
    threshold = ScoreCalibrator(calibration).similarity_at(FALSE_MATCH_RATE)
    sys.stderr.write(f"{len(photos)} photos, match threshold {threshold:.3f} (FMR 1e-3), min score {min_score}\n")
    if not args.skip_cost:
        records.extend(measure_costs(analyzers, photos[: args.cost_n], args.repeats))
        for record in records:
            sys.stderr.write(f"{record}\n")
    for analyzer in analyzers:
        for result in measure_angles(analyzer, photos, angles, threshold):
            records.append(result)
            sys.stderr.write(f"{result}\n")
    if args.json:
        for record in records:
            print(json.dumps({"kind": type(record).__name__, **asdict(record)}))
        return 0
    print("| mode | " + " | ".join(f"{a}°" for a in angles) + " | ms/upright photo | passes/upright photo |")
    print("|---|" + "---|" * (len(angles) + 2))
    for mode in args.modes.split(","):
        cells = [
            f"{r.matched}/{r.photos}" + ("" if r.found == r.photos else f" ({r.photos - r.found} no face)")
            for r in records
            if isinstance(r, AngleResult) and r.mode == mode
        ]
        cost = [r for r in records if isinstance(r, CostResult) and r.mode == mode]
        timing = [f"{cost[0].ms_per_photo}", f"{cost[0].mean_passes}"] if cost else ["-", "-"]
        print(f"| {mode} | " + " | ".join(cells + timing) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
