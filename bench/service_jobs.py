"""The HTTP service's background ingest and PDF report, timed through the whole app (auth, audit, engine lock).

    python bench/service_jobs.py --photos 60 --idle-searches 5 [--workers 1] [--json]

A fresh data directory gets face_recognition's example people as its gallery; an admin uploads the first --photos
LFW photos (by sorted name) as one ingest job over POST /api/v1/ingest/jobs, and an investigator searches with one
probe again and again until the job is done. Reported: how long the upload took to be accepted, how long the job
took to finish (photos per second), the median search latency before the job and while it ran (the job takes the
engine lock only for each batch's index write, so searches slow down but are never blocked for the job's length),
and how long the PDF report of the case (one search per measured search, ten candidates each) takes to make.
The requests go through starlette's in-process TestClient: no network, the same code as a served request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from facetrace.engine import open_engine
from facetrace.server.app import create_app

DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--photos", type=int, default=60, help="LFW photos uploaded as one job (at most 100)")
    parser.add_argument("--idle-searches", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="ingest worker processes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient

    examples = args.datasets / "face_recognition_examples" / "examples" / "knn_examples"
    lfw = sorted((args.datasets / "lfw" / "lfw-deepfunneled").glob("*/*.jpg"))[: args.photos]
    probe = examples / "test" / "obama1.jpg"
    with tempfile.TemporaryDirectory() as data:
        engine = open_engine(Path(data), workers=args.workers)
        engine.ingest.run([examples / "train"])
        admin = {"X-API-Key": engine.users.create_admin("admin", "bench").api_key}
        investigator = {"X-API-Key": engine.users.add_user("inv", "investigator", "admin").api_key}
        reviewer = {"X-API-Key": engine.users.add_user("rev", "reviewer", "admin").api_key}
        with TestClient(create_app(engine)) as client:
            case = {"title": "bench", "purpose": "timing", "legal_basis": "none"}
            case_id = client.post("/api/v1/cases", json=case, headers=investigator).json()["case_id"]

            def search() -> float:
                started = time.perf_counter()
                response = client.post(
                    f"/api/v1/cases/{case_id}/searches",
                    files={"probe": (probe.name, probe.read_bytes(), "image/jpeg")},
                    data={"purpose": "timing", "top_k": "10"},
                    headers=investigator,
                )
                assert response.status_code == 201, response.text
                return time.perf_counter() - started

            idle = [search() for _ in range(args.idle_searches)]
            started = time.perf_counter()
            files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in lfw]
            response = client.post("/api/v1/ingest/jobs", files=files, headers=admin)
            assert response.status_code == 202, response.text
            accepted = time.perf_counter() - started
            job_id = response.json()["job_id"]
            during: list[float] = []
            while True:
                job = client.get(f"/api/v1/ingest/jobs/{job_id}", headers=admin).json()
                if job["status"] in ("done", "failed"):
                    break
                during.append(search())
            finished = time.perf_counter() - started
            started = time.perf_counter()
            pdf = client.get(f"/api/v1/cases/{case_id}/report.pdf", headers=reviewer)
            pdf_s = time.perf_counter() - started
        engine.close()
    result: dict[str, Any] = {
        "photos": len(lfw),
        "workers": args.workers,
        "job_status": job["status"],
        "images_added": job["images_added"],
        "faces_added": job["faces_added"],
        "errors": job["errors"],
        "accepted_s": round(accepted, 3),
        "job_s": round(finished, 2),
        "photos_per_s": round(len(lfw) / finished, 2),
        "search_idle_median_ms": round(statistics.median(idle) * 1000),
        "searches_during_job": len(during),
        "search_during_median_ms": round(statistics.median(during) * 1000) if during else None,
        "search_during_max_ms": round(max(during) * 1000) if during else None,
        "pdf_searches": len(idle) + len(during),
        "pdf_bytes": len(pdf.content),
        "pdf_s": round(pdf_s, 2),
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        for key, value in result.items():
            print(f"{key:>26}  {value}")
    return 0 if job["status"] == "done" else 1


if __name__ == "__main__":
    raise SystemExit(main())
