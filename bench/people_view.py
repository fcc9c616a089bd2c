"""The web UI's people view on an LFW subset: how long its pages take and how large they are.

    python bench/people_view.py --lfw ../shared/datasets/lfw --photos 500 --workdir /tmp/ft-people-view [--json]

The subset is whole LFW identities in a seeded random order until --photos photos, ingested with their labels
(a manifest) and clustered (`cluster --save`); a kept --workdir is reused. Then, in process (the app under Starlette's
TestClient: the engine, catalog and templates are real, the network is not), a reviewer working in a case opens the
grid's first page (people with two faces or more), the same with single faces too and the largest person's page, and
an admin previews the erasure of the largest person; each --repeats times. Reported: the median and slowest time per
page, its size, and the audit entries one view of it writes.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi.testclient import TestClient

from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher

PASSWORD = "bench-password-people"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def subset(lfw: Path, photos: int, seed: int) -> list[tuple[Path, str]]:
    """(photo, identity) of whole identities in seeded random order until `photos` photos."""
    by_identity: dict[str, list[Path]] = defaultdict(list)
    with (lfw / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_identity[row["identity"]].append((lfw / row["path"]).resolve())
    names = sorted(by_identity)
    random.Random(seed).shuffle(names)
    chosen: list[tuple[Path, str]] = []
    for name in names:
        if len(chosen) >= photos:
            break
        chosen.extend((path, name) for path in by_identity[name])
    return chosen


def build(workdir: Path, lfw: Path, photos: int, seed: int) -> Engine:
    data = workdir / "data"
    if (data / "facetrace.json").exists():
        return open_engine(data, workers=1)
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = workdir / "gallery.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label", "source_page", "legal_basis"])
        for path, name in subset(lfw, photos, seed):
            writer.writerow([path, name, f"https://example.org/{name}", "press archive"])
    engine = open_engine(data, workers=1)
    engine.ingest.run(manifests=[manifest])
    engine.clusters.save(actor="bench")
    return engine


def signed_in(app: Any, name: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    token = _CSRF.search(client.get("/ui/login").text)
    assert token
    answer = client.post("/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1)})
    assert answer.status_code == 303, answer.text
    return client


def timed(engine: Engine, repeats: int, request: Any) -> dict[str, Any]:
    seconds, size, entries = [], 0, 0
    for _ in range(repeats):
        before = len(engine.audit.entries())
        started = time.perf_counter()
        answer = request()
        seconds.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text[:500]
        size, entries = len(answer.content), len(engine.audit.entries()) - before
    return {
        "median_ms": round(1000 * statistics.median(seconds), 1),
        "max_ms": round(1000 * max(seconds), 1),
        "kib": round(size / 1024, 1),
        "audit_entries": entries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    engine = build(args.workdir, args.lfw, args.photos, args.seed)
    hasher = Argon2Hasher()
    known = {user.name for user in engine.users.users()}
    users = (("bench-reviewer", "reviewer"), ("bench-admin", "admin"), ("bench-investigator", "investigator"))
    for name, role in users:
        if name not in known:
            engine.users.add_user(name, role, "bench", password=PASSWORD, hasher=hasher)
    case = engine.cases.open_case(engine.users.user("bench-investigator"), "bench", "people view timing", "bench")
    engine.cases.add_member(engine.users.user("bench-admin"), case.case_id, "bench-reviewer")
    saved = engine.clusters.saved()
    largest = saved[0]
    app = create_app(engine)
    reviewer, admin = signed_in(app, "bench-reviewer"), signed_in(app, "bench-admin")
    within = urlencode({"case_id": case.case_id, "purpose": "bench"})
    csrf = _CSRF.search(admin.get("/ui/people").text)
    assert csrf
    pages = {
        "grid, first page": timed(engine, args.repeats, lambda: reviewer.get(f"/ui/people?{within}")),
        "grid, single faces too": timed(
            engine, args.repeats, lambda: reviewer.get(f"/ui/people?{within}&singles=true")
        ),
        "largest person": timed(
            engine, args.repeats, lambda: reviewer.get(f"/ui/people/clusters/{largest.cluster_id}?{within}")
        ),
        "erasure preview of the largest person": timed(
            engine,
            args.repeats,
            lambda: admin.post(
                f"/ui/people/clusters/{largest.cluster_id}/erase",
                data={"purpose": "bench", "everyone": "1", "reason": "bench", "csrf_token": csrf.group(1)},
            ),
        ),
    }
    result = {
        "photos": args.photos,
        "faces": engine.catalog.count_faces(engine.model_id),
        "clusters": len(saved),
        "clusters_with_2_or_more": sum(len(c.face_ids) > 1 for c in saved),
        "largest_person_faces": len(largest.face_ids),
        "repeats": args.repeats,
        "pages": pages,
    }
    engine.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['faces']} faces in {result['clusters']} clusters ({result['clusters_with_2_or_more']} with 2+); "
        f"largest person {result['largest_person_faces']} faces"
    )
    for page, figures in pages.items():
        print(
            f"  {page}: median {figures['median_ms']} ms, slowest {figures['max_ms']} ms, {figures['kib']} KiB, "
            f"{figures['audit_entries']} audit entries"
        )


if __name__ == "__main__":
    main()
