"""Time a pack's models on both runtimes: the figures behind each manifest's preferred_runtime.

    python -m facetrace.vision.runtime_benchmark [--pack ID_OR_DIR] [--data-dir DIR] [--threads 1] [--repeats 30]

With --data-dir holding the pack's landmark refinement model (scripts/install_face_mesh.py), that model is timed too.
Inputs are random (timing does not depend on content). The median of `repeats` runs after warm-up is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrace.core.errors import ModelPackError
from facetrace.vision import graph_fixes
from facetrace.vision.landmarks import face_mesh
from facetrace.vision.packs import load_pack
from facetrace.vision.sessions import CONCRETE_RUNTIMES, open_session

WARMUP_RUNS = 3
# YuNet at its native 640x640 and at the analyzer's largest detection size (1280 px long side, 16:9, padded).
DETECTOR_SHAPES = ((1, 3, 640, 640), (1, 3, 736, 1280))
EMBEDDER_BATCHES = (1, 8)


@dataclass(frozen=True)
class Timing:
    model: str
    runtime: str
    input_shape: tuple[int, ...]
    median_ms: float
    per_item_ms: float


def time_model(
    model_bytes: bytes,
    label: str,
    shapes: Sequence[tuple[int, ...]],
    *,
    threads: int,
    repeats: int,
    dynamic_spatial: bool,
) -> list[Timing]:
    rng = np.random.default_rng(0)
    timings: list[Timing] = []
    for runtime in CONCRETE_RUNTIMES:
        try:
            session = open_session(model_bytes, runtime, threads, label=label, dynamic_spatial=dynamic_spatial)
        except ModelPackError as exc:
            sys.stderr.write(f"{label}: {runtime} cannot load it: {exc}\n")
            continue
        for shape in shapes:
            x = rng.uniform(0, 255, shape).astype(np.float32)
            for _ in range(WARMUP_RUNS):
                session.run(x)
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                session.run(x)
                samples.append((time.perf_counter() - start) * 1000)
            median = statistics.median(samples)
            timings.append(Timing(label, runtime, shape, median, median / shape[0]))
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", default=None, help="pack id or folder (default: the built-in pack)")
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory holding added packs")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per session (default 1)")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per measurement (default 30)")
    args = parser.parse_args(argv)

    pack = load_pack(args.pack, args.data_dir)
    detector = time_model(
        # The analyzer's repair: detector graphs with fixed Resize sizes run wrong, or fail, at other input sizes.
        graph_fixes.scale_fixed_resizes(pack.detector.model.read_verified(), f"{pack.id} detector"),
        "detector",
        DETECTOR_SHAPES,
        threads=args.threads,
        repeats=args.repeats,
        dynamic_spatial=True,
    )
    size = (pack.embedder.input_height, pack.embedder.input_width)
    embedder = time_model(
        pack.embedder.model.read_verified(),
        "embedder",
        [(n, 3, *size) for n in EMBEDDER_BATCHES],
        threads=args.threads,
        repeats=args.repeats,
        dynamic_spatial=False,
    )
    mesh_file = pack.landmarks.installed(args.data_dir) if pack.landmarks is not None else None
    landmarks = (
        time_model(
            mesh_file.read_verified(),
            "landmarks",
            [(1, 3, face_mesh.INPUT_SIZE_PX, face_mesh.INPUT_SIZE_PX)],
            threads=args.threads,
            repeats=args.repeats,
            dynamic_spatial=False,
        )
        if mesh_file is not None
        else []
    )
    out = sys.stdout
    out.write(f"pack {pack.id}, {args.threads} thread(s), median of {args.repeats} runs\n")
    out.write(f"{'model':<9} {'runtime':<12} {'input':<18} {'ms/run':>8} {'ms/item':>8}\n")
    for t in detector + embedder + landmarks:
        shape = "x".join(map(str, t.input_shape))
        out.write(f"{t.model:<9} {t.runtime:<12} {shape:<18} {t.median_ms:8.1f} {t.per_item_ms:8.1f}\n")
    for name, timings, preferred in (
        ("detector", detector, pack.detector.preferred_runtime),
        ("embedder", embedder, pack.embedder.preferred_runtime),
        ("landmarks", landmarks, face_mesh.PREFERRED_RUNTIME),
    ):
        totals = {r: sum(t.per_item_ms for t in timings if t.runtime == r) for r in {t.runtime for t in timings}}
        if totals:
            fastest = min(totals, key=lambda r: totals[r])
            out.write(f"{name}: fastest {fastest}; preferred_runtime {preferred}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
