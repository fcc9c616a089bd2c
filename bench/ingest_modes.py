"""Ingest modes on the same photos: one process, local worker processes, Ray actors; faces/s and same faces or not.

    python bench/ingest_modes.py --n 1000 --workers 2 --ray local [--json]

Every mode ingests the first N photos of lfw/manifest.csv (sorted by path) into its own fresh data directory with
the `facetrace ingest` command in a subprocess, timed end to end (interpreter start, model loading, worker or Ray
start-up, storage), which is what a user waits for. One unmeasured pass reads the photos into the page cache first.

The face sets are then compared with the single-process one: the same assets (content hashes), the same number of
faces per asset, boxes within 0.5 px and embeddings with cosine > 0.999 (ingest is deterministic; only float
summation order may differ between processes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.engine import Engine, open_engine

REPO_ROOT = Path(__file__).resolve().parents[1]
BOX_TOLERANCE_PX = 0.5
MIN_EMBEDDING_COSINE = 0.999
FACETRACE = [sys.executable, "-m", "facetrace"]


@dataclass(frozen=True)
class ModeResult:
    mode: str
    command: str
    images_added: int
    faces: int
    errors: int
    seconds: float
    faces_per_s: float
    same_faces_as_single: bool | None  # None for the single-process reference itself
    difference: str = ""


def lfw_paths(datasets: Path, n: int) -> list[Path]:
    root = datasets / "lfw"
    with (root / "manifest.csv").open(newline="") as handle:
        paths = sorted(row["path"] for row in csv.DictReader(handle))
    return [root / p for p in paths[:n]]


def run_mode(mode: str, options: list[str], listing: Path, data: Path) -> tuple[dict[str, Any], float, str]:
    command = [*FACETRACE, "ingest", f"@{listing}", "--data", str(data), *options, "--json"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACETRACE_")}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    seconds = time.perf_counter() - start
    shown = " ".join(["facetrace", "ingest", "@photos.txt", "--data", f"<{mode}>", *options])
    return json.loads(done.stdout), seconds, shown


def faces_of(engine: Engine) -> dict[str, list[tuple[tuple[float, ...], np.ndarray]]]:
    """Per content hash: (box, embedding) of each face, in box order."""
    ids = engine.catalog.face_ids(engine.model_id).tolist()
    records = engine.catalog.faces_by_id(ids)
    stored_ids, vectors = engine.catalog.embeddings_by_id(ids, engine.model_id)
    vector_of = dict(zip(stored_ids.tolist(), vectors, strict=True))
    grouped: dict[str, list[tuple[tuple[float, ...], np.ndarray]]] = defaultdict(list)
    for face_id, record in records.items():
        box = (record.box.x1, record.box.y1, record.box.x2, record.box.y2)
        grouped[record.asset_sha256].append((box, vector_of[face_id]))
    return {sha: sorted(faces, key=lambda face: face[0]) for sha, faces in grouped.items()}


def difference(reference: Path, other: Path) -> str:
    """Empty if the two data directories hold the same faces; else the first difference found."""
    with open_engine(reference) as a, open_engine(other) as b:
        one, two = faces_of(a), faces_of(b)
    if one.keys() != two.keys():
        return f"assets differ: {len(one.keys() - two.keys())} only in one, {len(two.keys() - one.keys())} only in two"
    for sha, faces in one.items():
        if len(faces) != len(two[sha]):
            return f"{sha}: {len(faces)} faces vs {len(two[sha])}"
        for (box_a, vector_a), (box_b, vector_b) in zip(faces, two[sha], strict=True):
            if np.abs(np.subtract(box_a, box_b)).max() > BOX_TOLERANCE_PX:
                return f"{sha}: box {box_a} vs {box_b}"
            if float(np.dot(vector_a, vector_b)) <= MIN_EMBEDDING_COSINE:
                return f"{sha}: embedding cosine {float(np.dot(vector_a, vector_b)):.6f}"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="LFW photos (first N of the manifest, sorted by path)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the --workers mode")
    parser.add_argument("--ray", default="local", help="Ray address for the Ray mode (local: start Ray here)")
    parser.add_argument("--datasets", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    paths = lfw_paths(args.datasets, args.n)
    for path in paths:  # page cache: no mode pays for the first read from disk
        path.read_bytes()
    modes = [
        ("single process", ["--workers", "1"]),
        (f"{args.workers} worker processes", ["--workers", str(args.workers)]),
        (f"Ray ({args.ray})", ["--ray", args.ray]),
    ]
    results: list[ModeResult] = []
    with tempfile.TemporaryDirectory(prefix="ingest-modes-") as tmp:
        listing = Path(tmp) / "photos.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        reference = Path(tmp) / "mode0"
        for number, (mode, options) in enumerate(modes):
            data = Path(tmp) / f"mode{number}"
            summary, seconds, shown = run_mode(mode, options, listing, data)
            diff = difference(reference, data) if number else ""
            faces = int(summary["faces_added"])
            results.append(
                ModeResult(
                    mode=mode,
                    command=shown,
                    images_added=int(summary["images_added"]),
                    faces=faces,
                    errors=int(summary["errors"]),
                    seconds=round(seconds, 1),
                    faces_per_s=round(faces / seconds, 1),
                    same_faces_as_single=None if number == 0 else not diff,
                    difference=diff,
                )
            )
    if args.json:
        print(json.dumps({"photos": len(paths), "cpus": os.cpu_count(), "modes": [asdict(r) for r in results]}))
        return
    print(f"{len(paths)} LFW photos, {os.cpu_count()} CPUs")
    print("| mode | images | faces | errors | seconds | faces/s | same faces as single process |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        same = "(reference)" if r.same_faces_as_single is None else ("yes" if r.same_faces_as_single else r.difference)
        print(f"| {r.mode} | {r.images_added} | {r.faces} | {r.errors} | {r.seconds} | {r.faces_per_s} | {same} |")


if __name__ == "__main__":
    main()
