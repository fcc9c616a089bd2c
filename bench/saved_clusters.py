"""Saved clusters on an LFW subset: batch clustering against incremental placement, and what placement costs ingest.

    python bench/saved_clusters.py --lfw ../shared/datasets/lfw --photos 2000 --workdir /tmp/ft-saved-clusters [--json]

The subset is whole identities of LFW in a seeded random order until --photos photos. Each identity's photos are
split by number: odd ones (1, 3, ...) form the first half, even ones the second.
  batch:        ingest every photo, then `cluster --save` (one batch clustering of all faces).
  incremental:  ingest the first half, `cluster --save`, then ingest the second half with placement at ingest on
                (each new face joins a saved cluster or starts a new one).
  without:      the same second-half ingest on a copy of the first-half data with placement off, then the same
                placement as a separate `cluster --save --run ID`, timed on its own.
Scores are pairwise precision/recall and BCubed F1 of each photo's largest face against LFW's identities (every
face is clustered; background faces can only make the result worse). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from facetrace.engine import Engine, open_engine
from facetrace.evaluation.clustering import score_clustering


def subset(lfw: Path, photos: int, seed: int) -> tuple[list[Path], list[Path], dict[str, str]]:
    """(first half, second half, truth by resolved path) of whole identities in seeded random order."""
    by_identity: dict[str, list[Path]] = defaultdict(list)
    with (lfw / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_identity[row["identity"]].append((lfw / row["path"]).resolve())
    names = sorted(by_identity)
    random.Random(seed).shuffle(names)
    first: list[Path] = []
    second: list[Path] = []
    truth: dict[str, str] = {}
    for name in names:
        if len(truth) >= photos:
            break
        for number, path in enumerate(sorted(by_identity[name])):
            (first if number % 2 == 0 else second).append(path)
            truth[str(path)] = name
    return first, second, truth


def score_saved(engine: Engine, truth: dict[str, str]) -> dict[str, Any]:
    """Score the saved clusters on each photo's largest face."""
    clusters = engine.clusters.saved()
    cluster_of = {face_id: c.cluster_id for c in clusters for face_id in c.face_ids}
    records = engine.catalog.faces_by_id(list(cluster_of))
    largest: dict[str, tuple[float, int]] = {}
    for record in records.values():
        if record.asset_uri not in largest or record.box.area > largest[record.asset_uri][0]:
            largest[record.asset_uri] = (record.box.area, record.face_id)
    scored = [(cluster_of[face_id], truth[uri]) for uri, (_, face_id) in largest.items() if uri in truth]
    labels, identities = zip(*scored, strict=True)
    report = score_clustering(list(labels), list(identities)).to_dict()
    report["faces_clustered"] = len(cluster_of)
    report["saved_clusters"] = len(clusters)
    return report


def timed_ingest(data: Path, paths: list[Path], workers: int, **settings: Any) -> tuple[float, int, dict[str, int]]:
    with open_engine(data, workers=workers, **settings) as engine:
        started = time.perf_counter()
        summary = engine.ingest.run(paths)
        seconds = time.perf_counter() - started
    return seconds, summary.run_id, summary.source_counts


def timed_save(data: Path, run_id: int | None = None) -> tuple[float, dict[str, Any]]:
    with open_engine(data, workers=1) as engine:
        started = time.perf_counter()
        update = engine.clusters.save(run_id=run_id, actor="bench")
        seconds = time.perf_counter() - started
        return seconds, {
            "faces_considered": update.faces_considered,
            "faces_assigned": update.faces_assigned,
            "clusters_created": len(update.clusters_created),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, required=True, help="Emptied and reused: three data directories.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    first, second, truth = subset(args.lfw, args.photos, args.seed)
    shutil.rmtree(args.workdir, ignore_errors=True)
    batch, incremental, without = (args.workdir / name for name in ("batch", "incremental", "without"))
    out: dict[str, Any] = {"photos": len(truth), "identities": len(set(truth.values())), "first_half": len(first)}

    seconds, _, _ = timed_ingest(batch, first + second, args.workers)
    save_s, update = timed_save(batch)
    with open_engine(batch, workers=1) as engine:
        out["batch"] = {"ingest_s": seconds, "save_s": save_s, **update, **score_saved(engine, truth)}

    timed_ingest(incremental, first, args.workers)
    save_s, update = timed_save(incremental)
    with open_engine(incremental, workers=1) as engine:
        first_scores = score_saved(engine, truth)
    shutil.copytree(incremental, without)
    with_s, _, counts = timed_ingest(incremental, second, args.workers, cluster_at_ingest=True)
    with open_engine(incremental, workers=1) as engine:
        out["incremental"] = {
            "first_half_save_s": save_s,
            "first_half": first_scores,
            "second_half_ingest_s": with_s,
            "placed_at_ingest": counts,
            **score_saved(engine, truth),
        }
    without_s, run_id, _ = timed_ingest(without, second, args.workers, cluster_at_ingest=False)
    place_s, update = timed_save(without, run_id)
    out["without_placement"] = {"second_half_ingest_s": without_s, "placement_afterwards_s": place_s, **update}

    if args.json:
        print(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        print(f"{key}: {json.dumps(value)}")


if __name__ == "__main__":
    main()
