"""The review queue and the case report at a busy reviewer's scale: how long the queue, the nav's count, the queue
page and the reports take, and how many audit entries a view of each writes.

    python bench/review_queue.py --gallery <manifest.csv> --cases 20 --searches 25 [--repeat 5] [--json]

The gallery is ingested once (real models, real photos: e.g. tests' small gallery of face_recognition's examples);
then --cases cases, each with --searches stored searches whose hits are every gallery face with random evidence
(strong, moderate, weak), are recorded straight into the catalog (no model runs), the reviewer a member of all. A
third of each search's candidates get a review (in case 1, the first of them a confirmation, so its report has one
finding per search), and the queue holds the rest. Timings are medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from facetrace.core.types import Evidence, StoredHit, Strength
from facetrace.core.vocabulary import ReviewDecision
from facetrace.engine import open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher

PASSWORD = "correct horse battery staple"


def _median_ms(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def _hits(face_ids: list[int], rng: np.random.Generator, gallery_size: int) -> list[StoredHit]:
    hits = []
    for rank, face_id in enumerate(sorted(face_ids, key=lambda _: rng.random()), 1):
        strength = rng.choice([Strength.STRONG, Strength.MODERATE, Strength.WEAK, Strength.WEAK, Strength.WEAK])
        rate = {Strength.STRONG: 1e-7, Strength.MODERATE: 1e-5}.get(strength, 1e-2)
        evidence = Evidence(
            similarity=float(rng.uniform(0.2, 0.8)),
            strength=Strength(strength),
            false_match_rate=rate,
            gallery_size=gallery_size,
            gallery_false_match_probability=1 - (1 - rate) ** gallery_size,
            probe_quality=0.9,
            weak_probe=False,
            weak_candidate=False,
        )
        hits.append(StoredHit(0, rank, face_id, evidence))
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=Path, required=True, help="a CSV manifest (uri,label,...) to ingest")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--searches", type=int, default=25, help="searches per case")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as folder:
        engine = open_engine(Path(folder) / "data", workers=1)
        assert engine.ingest.run(manifests=[args.gallery]).errors == 0
        with args.gallery.open(newline="") as handle:
            photos = sum(1 for _ in csv.DictReader(handle))
        face_ids = sorted(face.face_id for face in engine.catalog.faces_by_id(list(range(1, 10 * photos))).values())
        hasher = Argon2Hasher()
        for name, role in (("ines", "investigator"), ("rita", "reviewer"), ("adam", "admin")):
            engine.users.add_user(name, role, "bench", password=PASSWORD, hasher=hasher)
        ines, rita, admin = (engine.users.user(n) for n in ("ines", "rita", "adam"))
        store = engine.catalog.governance_store()
        start = time.perf_counter()
        for c in range(args.cases):
            case = engine.cases.open_case(ines, f"case {c}", "bench", "bench")
            engine.cases.add_member(admin, case.case_id, "rita")
            for _ in range(args.searches):
                hits = _hits(face_ids, rng, len(face_ids))
                record = store.add_search(case.case_id, "ines", "bench", "0" * 64, "probe.jpg", "m", None, hits)
                decided = hits[: len(hits) // 3]
                for n, hit in enumerate(decided):
                    decision = ReviewDecision.CONFIRMED if n == 0 and c == 0 else ReviewDecision.REJECTED
                    store.add_review(record.search_id, hit.face_id, "rita", decision, "")
        setup_s = time.perf_counter() - start
        queue = engine.cases.review_queue(rita)
        app = create_app(engine)
        with TestClient(app, follow_redirects=False) as client:
            page = client.get("/ui/login")
            token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            client.post("/ui/login", data={"username": "rita", "password": PASSWORD, "csrf_token": token})
            before = engine.audit.length()
            queue_page = client.get("/ui/review")
            queue_entries = engine.audit.length() - before
            before = engine.audit.length()
            report = client.get("/ui/cases/1/report")
            report_entries = engine.audit.length() - before
            figures = {
                "cases": args.cases,
                "searches": args.cases * args.searches,
                "hits": args.cases * args.searches * len(face_ids),
                "awaiting": sum(len(item.candidates) for item in queue),
                "setup_s": round(setup_s, 1),
                "review_queue_ms": _median_ms(lambda: engine.cases.review_queue(rita), args.repeat),
                "awaiting_count_ms": _median_ms(lambda: engine.cases.awaiting_count(rita), args.repeat),
                "cases_page_ms": _median_ms(lambda: client.get("/ui/cases"), args.repeat),
                "queue_page_ms": _median_ms(lambda: client.get("/ui/review"), args.repeat),
                "queue_page_kb": round(len(queue_page.content) / 1024),
                "queue_view_audit_entries": queue_entries,
                "report_ms": _median_ms(lambda: client.get("/ui/cases/1/report"), args.repeat),
                "report_kb": round(len(report.content) / 1024),
                "report_view_audit_entries": report_entries,
                "report_pdf_ms": _median_ms(lambda: client.get("/ui/cases/1/report.pdf"), args.repeat),
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }
        engine.close()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
