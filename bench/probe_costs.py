"""What one search costs in CPU, piece by piece, and what thread counts and batching change (docs/benchmarks.md,
"Using the cores").

    python bench/probe_costs.py [--data DIR] [--probes 40] [--json]

--data is a gallery built by bench/serve_load.py (its held-out probes and its FAISS index); without it the probes are
the first LFW photos and the index part is skipped. Each piece is timed --probes times after one warm-up call, in CPU
milliseconds of the whole process (time.process_time(): helper threads count) and in wall milliseconds:
    analysis    decode + detect + align + embed of a probe (OnnxFaceAnalyzer.analyze), and detect and embed alone,
                at 1 and 2 intra-op threads (fresh analyzers), and the embedder on 8 crops in one call
    index       FAISS search of one query, and of batches of 8, at 1 and 2 OpenMP threads (set in this thread)
The machine's load average is printed with the figures: on a shared machine the CPU times are the steadier ones.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.index.threads import set_query_threads
from facetrace.vision.analyzer import open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.options import AnalyzerOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
PROBES_FILE = "bench_probes.json"  # written by bench/serve_load.py into its gallery


def timed(work: Callable[[int], object], repeats: int) -> dict[str, float]:
    """Milliseconds per call (CPU of the process, wall), after one warm-up call; work gets the call's number."""
    work(0)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(repeats):
        work(i)
    return {
        "cpu_ms": round((time.process_time() - cpu) / repeats * 1000, 2),
        "wall_ms": round((time.perf_counter() - wall) / repeats * 1000, 2),
    }


def probe_photos(data: Path | None, lfw: Path, count: int) -> list[tuple[bytes, str]]:
    if data is not None and (data / PROBES_FILE).exists():
        paths = [Path(p["path"]) for p in json.loads((data / PROBES_FILE).read_text())["probes"][:count]]
    else:
        with (lfw / "manifest.csv").open(newline="") as handle:
            paths = [lfw / row["path"] for _, row in zip(range(count), csv.DictReader(handle), strict=False)]
    return [(p.read_bytes(), p.name) for p in paths]


def analysis_costs(photos: list[tuple[bytes, str]], repeats: int) -> dict[str, dict[str, float]]:
    return {**analysis_costs_at(1, photos, repeats), **analysis_costs_at(2, photos, repeats)}


def analysis_costs_at(threads: int, photos: list[tuple[bytes, str]], repeats: int) -> dict[str, dict[str, float]]:
    analyzer = open_analyzer(AnalyzerOptions(threads=threads))
    analyzer.warmup()
    n = len(photos)
    images = [decode_image(data, name, max_pixels=50_000_000) for data, name in photos]
    crops = [analyzer.align(image, found[0]) for image in images if (found := analyzer.detect(image))]
    results = {
        f"analyze, {threads} thread(s)": timed(lambda i: analyzer.analyze(*photos[i % n]), repeats),
        f"detect, {threads} thread(s)": timed(lambda i: analyzer.detect(images[i % n]), repeats),
        f"embed 1 crop, {threads} thread(s)": timed(
            lambda i: analyzer.embed_aligned(crops[i % len(crops) : i % len(crops) + 1]), repeats
        ),
    }
    if threads == 1:
        batch = timed(lambda i: analyzer.embed_aligned(crops[:8]), max(1, repeats // 8))
        results["embed 8 crops in one call, 1 thread (per crop)"] = {k: round(v / 8, 2) for k, v in batch.items()}
    return results


def index_costs(data: Path, repeats: int) -> dict[str, dict[str, float]]:
    import faiss  # a bench script: the index file is read as FAISS wrote it

    index = faiss.read_index(str(data / "faces.faiss"))
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((8, index.d)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    results: dict[str, dict[str, float]] = {}
    for threads in (1, 2):
        set_query_threads(threads)
        results[f"FAISS 1 query of {index.ntotal:,}, {threads} thread(s)"] = timed(
            lambda i: index.search(queries[:1], 10), repeats
        )
        batch = timed(lambda i: index.search(queries, 10), max(1, repeats // 8))
        results[f"FAISS batch of 8, {threads} thread(s) (per query)"] = {k: round(v / 8, 2) for k, v in batch.items()}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="A gallery built by bench/serve_load.py (probes and index).")
    parser.add_argument("--lfw", type=Path, default=REPO_ROOT.parent / "shared" / "datasets" / "lfw")
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    photos = probe_photos(args.data, args.lfw, args.probes)
    costs = analysis_costs(photos, args.probes)
    if args.data is not None and (args.data / "faces.faiss").exists():
        costs.update(index_costs(args.data, args.probes))
    record: dict[str, Any] = {
        "costs": costs,
        "probes": len(photos),
        "load_average": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(record))
    else:
        for name, value in costs.items():
            print(f"{name:55s} CPU {value['cpu_ms']:7.2f} ms   wall {value['wall_ms']:7.2f} ms")
        print(f"load average {record['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
