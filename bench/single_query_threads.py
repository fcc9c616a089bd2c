"""Single-query latency of an index kept by bench/search_scale.py --keep, on one thread and on two, side by side.

    python bench/single_query_threads.py --keep /tmp/scale/idx10m --n 10000000 [--settings default,2048:50]
        [--queries 200] [--json]

Reopens the kept index (same --n, --dim, --noise, --seed, --per-identity as the run that kept it, so the queries are
that run's) and times one-query searches (top 10) three ways, taking turns query by query so that a change of load
on the shared machine hits all three alike:

    one-thread        IvfStore.search on one faiss thread (faiss's own fast-scan implementation, one list after
                      another)
    two-unspread      the same implementation on two threads: how a lone query ran before its lists were spread
                      (faiss shares threads out over the queries of a search, so one query kept one thread busy)
    two-spread        IvfStore.search on two threads: the query's inverted lists spread over them
                      (facetrace.index.faiss.stores.spread_over_lists)

Per way: p50 and p99 wall time, and the mean CPU time of the process per query (every thread's; on a loaded machine
a second thread that waits for a core costs wall time but no CPU time). Recall is not measured here: the lists and
re-ranking are the same, only the thread split differs (bench/search_scale.py measures recall at these settings).

OMP_WAIT_POLICY (recorded as wait_policy) is read by libgomp when faiss loads, so it has to be set in the environment
of the command (setting os.environ once running is too late): with the default (threads spin before they sleep) a
spread query on an oversubscribed machine waits for its descheduled second thread while the first one spins.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facetrace.core.types import FloatArray
from facetrace.index.faiss.backend import FaissIndex
from facetrace.index.faiss.stores import IvfStore, omp_threads, spread_over_lists
from search_scale import MODEL_ID, SyntheticFaces  # bench/, the script's directory, is first on sys.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, required=True, help="the directory bench/search_scale.py --keep used")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--noise", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-identity", type=float, default=20.0)
    parser.add_argument("--settings", default="default", help="comma-separated nprobe:rerank pairs, or default")
    parser.add_argument("--queries", type=int, default=200, help="one-query searches timed per way")
    parser.add_argument("--json", action="store_true", help="one JSON record per line")
    args = parser.parse_args(argv)
    data = SyntheticFaces(args.n, args.dim, max(args.queries, 1), args.per_identity, args.noise, args.seed)
    index = FaissIndex(args.keep / "ivf.faiss", MODEL_ID, args.dim)
    store = index._store
    if not isinstance(store, IvfStore) or store._ivf is None:
        raise SystemExit(f"{args.keep} holds no trained approximate index")
    ivf = store._ivf

    def unspread(queries: FloatArray) -> object:
        depth = store.structure.rerank
        with omp_threads(2):
            spread_over_lists(ivf, False, depth)
            _, rows = ivf.search(queries, depth)
        return store._rerank(queries, rows, 10)

    ways: dict[str, Callable[[FloatArray], object]] = {
        "one-thread": lambda queries: store.search(queries, 10, threads=1),
        "two-unspread": unspread,
        "two-spread": lambda queries: store.search(queries, 10, threads=2),
    }
    for setting in args.settings.split(","):
        if setting != "default":
            nprobe, rerank = (int(part) for part in setting.split(":"))
            index.tune(nprobe=nprobe, rerank=rerank)
        wall: dict[str, list[float]] = {way: [] for way in ways}
        cpu: dict[str, list[float]] = {way: [] for way in ways}
        for search in ways.values():
            search(data.queries[:1])  # warm-up
        for row in range(args.queries):
            query = data.queries[row : row + 1]
            for way, search in ways.items():
                cpu_started, started = time.process_time(), time.perf_counter()
                search(query)
                wall[way].append((time.perf_counter() - started) * 1000)
                cpu[way].append((time.process_time() - cpu_started) * 1000)
        for way in ways:
            record = {
                "n": args.n,
                "setting": store.structure.describe(),
                "way": way,
                "queries": args.queries,
                "p50_ms": round(float(np.percentile(wall[way], 50)), 2),
                "p99_ms": round(float(np.percentile(wall[way], 99)), 2),
                "cpu_ms_per_query": round(float(np.mean(cpu[way])), 2),
                "load_avg": round(os.getloadavg()[0], 2),
                "wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            }
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                print(" ".join(f"{key}={value}" for key, value in record.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
