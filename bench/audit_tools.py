"""The auditor's tools on a large audit log, timed through the whole app (session, audit entry of the read itself).

    python bench/audit_tools.py --entries 20000 [--catalog-uri postgresql://...] [--json]

A fresh data directory gets --entries audit entries shaped like a busy unit's day: investigators' searches in 50
cases and, for each search, the views of its ten candidates (face and thumbnail), a few reviews, erasure previews
and erasures. Reported: how long appending them took (entries per second), the audit page unfiltered and filtered
by actor, by case (the case filter reads the details' JSON) and by period, the CSV export of the whole log and of
one case, and the transparency report for the day. No models are loaded. The requests go through starlette's
in-process TestClient: no network, the same code as a served request.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from facetrace.core.vocabulary import AuditAction
from facetrace.engine import open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher

PASSWORD = "a long enough password"


def _fill(engine: Any, entries: int, seed: int = 7) -> float:
    """Append about `entries` entries; returns the seconds it took."""
    rng = random.Random(seed)
    audit = engine.audit
    start = time.perf_counter()
    written = search = 0
    while written < entries:
        search += 1
        actor, case_id = f"investigator{rng.randrange(20)}", rng.randrange(1, 51)
        faces = rng.sample(range(1, 100_000), 10)
        audit.record(actor, AuditAction.SEARCH, f"search:{search}", case_id=case_id, purpose="p", hit_face_ids=faces)
        for face in faces:
            audit.record(actor, AuditAction.VIEW_FACE, f"face:{face}", case_id=case_id, purpose="review")
            audit.record(actor, AuditAction.VIEW_THUMBNAIL, f"face:{face}", case_id=case_id, purpose="review")
        written += 21
        if search % 10 == 0:
            audit.record("reviewer1", AuditAction.REVIEW, f"search:{search}", case_id=case_id, decision="confirmed")
            audit.record("admin", AuditAction.ERASE_PREVIEW, "erasure_preview:label", mode="label", subject=str(search))
            audit.record("admin", AuditAction.ERASE, f"erasure:er_{search}", mode="label", subject=str(search))
            written += 3
    return time.perf_counter() - start


def _timed(client: TestClient, url: str, repeat: int = 3) -> tuple[float, int]:
    """Best of repeat (seconds) and the response's size in bytes."""
    best, size = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - start
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        best, size = min(best, elapsed), len(response.content)
    return best, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--catalog-uri", default=None, help="default: SQLite in the data directory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        options: dict[str, Any] = {"index_uri": "memory://"}
        if args.catalog_uri:
            options["catalog_uri"] = args.catalog_uri
        with open_engine(Path(scratch) / "data", **options) as engine:
            engine.users.add_user("olga", "auditor", "cli:bench", password=PASSWORD, hasher=Argon2Hasher())
            fill_s = _fill(engine, args.entries)
            total = engine.audit.length()
            today = datetime.now(UTC).date().isoformat()
            with TestClient(create_app(engine)) as client:
                page = client.get("/ui/login")
                token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
                client.post("/ui/login", data={"username": "olga", "password": PASSWORD, "csrf_token": token})
                urls = {
                    "page, no filter": "/ui/audit",
                    "page, one actor": "/ui/audit?actor=investigator3",
                    "page, one case": "/ui/audit?case_id=17",
                    "page, today": f"/ui/audit?from={today}&to={today}",
                    "CSV, whole log": "/ui/audit.csv",
                    "CSV, one case": "/ui/audit.csv?case_id=17",
                    "transparency, today": f"/ui/audit/transparency?from={today}&to={today}",
                }
                timings = {name: _timed(client, url) for name, url in urls.items()}
    result = {
        "entries": total,
        "append_per_s": round(total / fill_s),
        "catalog": "postgresql" if args.catalog_uri else "sqlite",
        "requests": {name: {"s": round(s, 3), "bytes": size} for name, (s, size) in timings.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{total} entries ({result['catalog']}), appended at {result['append_per_s']}/s")
        for name, (seconds, size) in timings.items():
            print(f"  {name:<22} {seconds * 1000:8.0f} ms  {size / 1024:8.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
