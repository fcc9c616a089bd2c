"""Which faces to align on the face mesh's points: LFW verification per landmark policy, from one pass over the photos.

    python bench/turned_faces.py --data DIR [--pairs L/pairs_resolved.csv --root L] [--workers 2] [--json-out F]

DIR must hold the face mesh model (scripts/install_face_mesh.py). Each distinct photo of the pairs file is analysed
once as the engine does (restoration, detection with the rotation and subject-face fallbacks); its subject face
(facetrace.evaluation.select_subject_face's rule) is embedded twice, aligned on the detector's five points and on the
mesh's, and the yaw the quality module estimates from the detector's points is kept. Each policy then picks one of
the two embeddings per photo, and the LFW 10-fold protocol and TAR at FAR 1e-3 are computed for it, on all pairs and
on the pairs with a turned face (either photo's |yaw| at or above --turned-yaw, the subset `facetrace eval verify`
reports). Policies: detector (every face on the detector's points), refined (every face on the mesh's: what
`landmarks: auto` does with the model installed), and selective ones at several yaw bounds (the mesh only for faces
beyond the bound or doubted by the detector: scored below the pack's confident bound, or kept by the subject-face
fallback; the 35-degree one is what `landmarks: turned` does), the alternatives auto was measured against. The
mesh's cost per face is timed too. Embeddings are kept in --cache (an .npz) so the report can be recomputed without
the models.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.core.types import Detection
from facetrace.evaluation import metrics
from facetrace.evaluation.datasets import read_pairs
from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.quality import estimate_yaw_deg
from facetrace.vision.restoration import restore

DATASETS = Path(os.environ.get("FACETRACE_DATASETS", Path(__file__).resolve().parents[1].parent / "shared/datasets"))
SELECTIVE_YAW_BOUNDS = (15.0, 25.0, 35.0, 45.0)
DEFAULT_TURNED_YAW = 30.0

_analyzer: OnnxFaceAnalyzer | None = None


def _subject(detections: Sequence[Detection], width: int, height: int) -> int:
    """Index of the subject face: evaluation.embeddings.select_subject_face's rule on boxes."""
    centre_x, centre_y = width / 2.0, height / 2.0
    half_diagonal = max(1.0, math.hypot(centre_x, centre_y))

    def weight(index: int) -> float:
        box = detections[index].box
        distance = math.hypot((box.x1 + box.x2) / 2.0 - centre_x, (box.y1 + box.y2) / 2.0 - centre_y)
        closeness = max(0.0, 1.0 - distance / half_diagonal)
        return box.area * closeness * closeness

    return max(range(len(detections)), key=weight)


def _start(data_dir: str) -> None:
    global _analyzer
    _analyzer = open_analyzer(AnalyzerOptions(data_dir=Path(data_dir), landmarks="refined", threads=1))
    _analyzer.warmup()


def _analyse(path: str) -> dict[str, Any]:
    analyzer = _analyzer
    assert analyzer is not None
    bgr = decode_image(Path(path).read_bytes(), path, max_pixels=analyzer.options.max_image_pixels)
    restored, _ = restore(bgr, analyzer.options.restoration)
    report = analyzer.detect_report(restored)
    if not report.detections:
        return {"path": path, "found": False}
    detection = report.detections[_subject(report.detections, bgr.shape[1], bgr.shape[0])]
    started = time.perf_counter()
    refined = analyzer.alignment_points(restored, detection)
    mesh_seconds = time.perf_counter() - started
    vectors = analyzer.embed_aligned([analyzer.align(restored, detection), analyzer.align(restored, refined)])
    return {
        "path": path,
        "found": True,
        "detector": vectors[0],
        "refined": vectors[1],
        "yaw": estimate_yaw_deg(np.asarray(detection.landmarks, dtype=np.float64)),
        "doubted": bool(report.fallback) or detection.score < analyzer.pack.detector.confident_detection_score,
        "mesh_seconds": mesh_seconds,
    }


def embed_all(paths: Sequence[str], data_dir: Path, workers: int, cache: Path) -> dict[str, np.ndarray]:
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if list(stored["paths"]) == list(paths):
                return {key: stored[key] for key in stored.files}
    rows: list[dict[str, Any]] = []
    with multiprocessing.get_context("spawn").Pool(workers, _start, (str(data_dir),)) as pool:
        for done, row in enumerate(pool.imap(_analyse, paths, chunksize=16), 1):
            rows.append(row)
            if done % 500 == 0:
                print(f"{done}/{len(paths)} photos", file=sys.stderr, flush=True)
    dim = next(len(r["detector"]) for r in rows if r["found"])
    zero = np.zeros(dim, dtype=np.float32)
    result = {
        "paths": np.array(paths),
        "found": np.array([r["found"] for r in rows]),
        "detector": np.stack([r.get("detector", zero) for r in rows]).astype(np.float32),
        "refined": np.stack([r.get("refined", zero) for r in rows]).astype(np.float32),
        "yaw": np.array([r.get("yaw", 0.0) for r in rows]),
        "doubted": np.array([r.get("doubted", False) for r in rows]),
        "mesh_seconds": np.array([r.get("mesh_seconds", 0.0) for r in rows]),
    }
    np.savez(cache, **result)
    return result


def evaluate(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, float]:
    kfold = metrics.kfold_accuracy(scores, same, folds)
    point = metrics.tar_at_far(scores, same, 1e-3)
    return {
        "accuracy": kfold.mean,
        "accuracy_std": kfold.std,
        "tar_at_far_1e-3": point.tar,
        "threshold": point.threshold,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="data directory holding the face mesh model")
    parser.add_argument("--pairs", type=Path, default=DATASETS / "lfw" / "pairs_resolved.csv")
    parser.add_argument("--root", type=Path, default=DATASETS / "lfw")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--turned-yaw", type=float, default=DEFAULT_TURNED_YAW)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/facetrace-turned-faces.npz"))
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    pairs = read_pairs(args.pairs)
    paths = sorted({str((args.root / p).resolve()) for pair in pairs for p in (pair.path_a, pair.path_b)})
    data = embed_all(paths, args.data, args.workers, args.cache)
    row = {path: index for index, path in enumerate(data["paths"].tolist())}
    a = np.array([row[str((args.root / pair.path_a).resolve())] for pair in pairs])
    b = np.array([row[str((args.root / pair.path_b).resolve())] for pair in pairs])
    same = np.array([pair.same for pair in pairs])
    folds = np.array([pair.fold for pair in pairs])
    yaw = np.abs(data["yaw"])
    turned = (yaw[a] >= args.turned_yaw) | (yaw[b] >= args.turned_yaw)
    policies = {"detector": np.zeros(len(paths), dtype=bool), "refined": data["found"].copy()}
    for bound in SELECTIVE_YAW_BOUNDS:
        policies[f"mesh if yaw > {bound:g} or doubted"] = data["found"] & ((yaw > bound) | data["doubted"])
    found = data["found"][a] & data["found"][b]
    results: dict[str, Any] = {
        "photos": len(paths),
        "photos_without_face": int((~data["found"]).sum()),
        "turned_yaw_deg": args.turned_yaw,
        "turned_photos": int((yaw >= args.turned_yaw).sum()),
        "turned_pairs": int(turned.sum()),
        "turned_same_pairs": int((turned & same).sum()),
        "mesh_ms_per_face_median": float(np.median(data["mesh_seconds"][data["found"]]) * 1000),
        "policies": {},
    }
    for name, use_mesh in policies.items():
        vectors = np.where(use_mesh[:, None], data["refined"], data["detector"])
        scores = np.where(found, np.einsum("ij,ij->i", vectors[a], vectors[b]), -1.0)
        overall = evaluate(scores, same, folds)
        threshold = overall["threshold"]  # TAR at FAR 1e-3 over all 3,000 impostor pairs
        results["policies"][name] = {
            "photos_refined": int(use_mesh.sum()),
            "all": overall,
            "turned": {
                "accuracy_at_best_threshold": metrics.accuracy_at(
                    scores[turned], same[turned], metrics.best_threshold(scores, same)[0]
                ),
                "tar_at_all_pairs_far_1e-3_threshold": float(np.mean(scores[turned & same] >= threshold)),
                "impostors_accepted_at_that_threshold": int(np.sum(scores[turned & ~same] >= threshold)),
                "genuine_mean_similarity": float(scores[turned & same].mean()),
            },
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
