"""Repeated-probe detection at scale: the tiled matrix product against the first version's all-pairs loop.

    python bench/repeated_probes.py --n 3000,20000,100000 [--reference-max 3000] [--dim 128] [--json]

Synthetic searches: n // 4 people (random unit centres), each probe face its person's centre plus noise (same-person
cosine about 0.6 at --noise 0.8), 200 cases, photos drawn with repeats. Both versions get the same searches and the
default pack's strict similarity (0.617); the all-pairs loop runs only up to --reference-max searches (it is the
slow one) and its pairs must equal the tiled version's.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import UTC, datetime

import numpy as np

from facetrace.core.types import SearchRecord
from facetrace.governance.repeats import RepeatedProbe, find_repeated_probes

STRICT_SIMILARITY = 0.617  # the default pack's similarity at a false-match rate of 1e-6
CASES = 200


def make_searches(n: int, dim: int, noise: float, seed: int) -> list[SearchRecord]:
    rng = np.random.default_rng(seed)
    people = rng.standard_normal((max(1, n // 4), dim)).astype(np.float32)
    people /= np.linalg.norm(people, axis=1, keepdims=True)
    vectors = people[rng.integers(0, len(people), n)] + rng.standard_normal((n, dim)).astype(np.float32) * (
        noise / math.sqrt(dim)
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        SearchRecord(i, int(rng.integers(CASES)), "u", "p", f"photo-{int(rng.integers(n))}", "p", at, "m", vectors[i])
        for i in range(n)
    ]


def all_pairs(searches: list[SearchRecord], threshold: float) -> list[RepeatedProbe]:
    """The first version of CaseService.repeated_probes, verbatim: every earlier search for every later one."""

    def similarity(a: SearchRecord, b: SearchRecord) -> float | None:
        if a.probe_embedding is None or b.probe_embedding is None or a.model_id != b.model_id:
            return None
        if a.probe_embedding.shape != b.probe_embedding.shape:
            return None
        value = float(np.dot(a.probe_embedding, b.probe_embedding))
        return value if math.isfinite(value) else None

    ordered = sorted(searches, key=lambda s: s.search_id)
    found: list[RepeatedProbe] = []
    for later_pos, later in enumerate(ordered):
        for earlier in ordered[:later_pos]:
            if earlier.case_id == later.case_id:
                continue
            same_photo = earlier.probe_sha256 == later.probe_sha256
            value = similarity(earlier, later)
            if same_photo or (value is not None and value >= threshold):
                found.append(
                    RepeatedProbe(
                        earlier.search_id,
                        later.search_id,
                        earlier.case_id,
                        later.case_id,
                        earlier.user,
                        later.user,
                        same_photo,
                        value,
                    )
                )
    return found


def _key(repeat: RepeatedProbe) -> tuple[int, int, bool]:
    return repeat.earlier_search_id, repeat.later_search_id, repeat.same_photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="3000,20000", help="Comma-separated numbers of searches.")
    parser.add_argument("--reference-max", type=int, default=3000, help="Largest n the all-pairs loop runs on.")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--noise", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for n in (int(part) for part in args.n.split(",")):
        searches = make_searches(n, args.dim, args.noise, args.seed)
        started = time.perf_counter()
        found = find_repeated_probes(searches, STRICT_SIMILARITY)
        record: dict[str, object] = {"n": n, "pairs": len(found), "tiled_s": round(time.perf_counter() - started, 3)}
        if n <= args.reference_max:
            started = time.perf_counter()
            reference = all_pairs(searches, STRICT_SIMILARITY)
            same = [_key(r) for r in reference] == [_key(r) for r in found]
            record.update(all_pairs_s=round(time.perf_counter() - started, 3), same_pairs=same)
        print(json.dumps(record) if args.json else "  ".join(f"{k}={v}" for k, v in record.items()), flush=True)


if __name__ == "__main__":
    main()
