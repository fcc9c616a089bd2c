"""Ingest jobs over HTTP (uploads and server paths confined to the ingest roots), people and labels, the server-made
PDF case report, and closing cases: on a real engine with real models over real photos."""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import SmallGallery
from facetrace.core.errors import InvalidRequestError
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.jobs import STOPPED_MESSAGE, JobQueue, Upload
from facetrace.server.passwords import Argon2Hasher

pytestmark = pytest.mark.slow

ROLES = ("admin", "investigator", "reviewer", "auditor")
PASSWORD = "correct horse battery staple"
JOB_TIMEOUT_S = 300.0  # three LFW photos take seconds alone; the shared 2-core machine can be much slower
BUSH = "George_W_Bush"


@dataclass
class Service:
    engine: Engine
    client: TestClient
    keys: dict[str, str]
    gallery: SmallGallery
    lfw: Path
    roots_dir: Path  # a second ingest root, for manifests written by the tests

    def as_user(self, name: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[name]}

    def bush(self, number: int) -> Path:
        return self.lfw / "lfw-deepfunneled" / BUSH / f"{BUSH}_{number:04d}.jpg"


@pytest.fixture(scope="module")
def service(small_gallery: SmallGallery, lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    roots_dir = tmp_path_factory.mktemp("ingest-root")
    engine = open_engine(
        tmp_path_factory.mktemp("jobs") / "data", workers=1, ingest_roots=(small_gallery.root, roots_dir)
    )
    assert engine.ingest.run(manifests=[small_gallery.manifest]).errors == 0
    hasher = Argon2Hasher()
    keys = {}
    for name, role in [*((role, role) for role in ROLES), ("investigator2", "investigator")]:
        keys[name] = engine.users.add_user(name, role, "cli:test", password=PASSWORD, hasher=hasher).api_key
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield Service(engine, client, keys, small_gallery, lfw, roots_dir)
        for job in client.app.state.jobs.jobs():  # type: ignore[attr-defined]
            client.app.state.jobs.wait(job.job_id, JOB_TIMEOUT_S)  # type: ignore[attr-defined]
    engine.close()


def _finished(service: Service, job_id: str) -> dict[str, Any]:
    """Poll GET /ingest/jobs/{id} as a client would, until the job is done or failed."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    seen_statuses = set()
    while time.monotonic() < deadline:
        response = service.client.get(f"/api/v1/ingest/jobs/{job_id}", headers=service.as_user("admin"))
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        seen_statuses.add(job["status"])
        assert job["status"] in ("queued", "running", "done", "failed")
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {JOB_TIMEOUT_S} s (statuses seen: {seen_statuses})")


def _open_case(service: Service, title: str = "Fraud 9") -> int:
    body = {"title": title, "purpose": "find the man on the bank camera", "legal_basis": "warrant 2026/9"}
    response = service.client.post("/api/v1/cases", json=body, headers=service.as_user("investigator"))
    assert response.status_code == 201, response.text
    case_id = int(response.json()["case_id"])
    # Access by case: the reviewer works in it once an admin adds them.
    added = service.client.post(
        f"/api/v1/cases/{case_id}/members", json={"user": "reviewer"}, headers=service.as_user("admin")
    )
    assert added.status_code == 201, added.text
    return case_id


def _search(service: Service, case_id: int, probe: Path) -> Any:
    return service.client.post(
        f"/api/v1/cases/{case_id}/searches",
        files={"probe": (probe.name, probe.read_bytes(), "image/jpeg")},
        data={"purpose": "who is at the counter", "top_k": "3"},
        headers=service.as_user("investigator"),
    )


def _audit(service: Service, action: str) -> list[dict[str, Any]]:
    entries = service.client.get("/api/v1/audit?limit=1000", headers=service.as_user("auditor")).json()
    return [entry for entry in entries if entry["action"] == action]


def test_an_uploaded_ingest_job_completes_and_its_faces_are_found_by_a_search(service: Service) -> None:
    photos = [service.bush(n) for n in (1, 2, 3)]
    response = service.client.post(
        "/api/v1/ingest/jobs",
        files=[("photos", (f"upload {p.name}", p.read_bytes(), "image/jpeg")) for p in photos],
        data={"label": BUSH, "legal_basis": "consent form 12"},
        headers=service.as_user("admin"),
    )
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["status"] in ("queued", "running") and started["files_total"] == 3
    job = _finished(service, started["job_id"])
    assert job["status"] == "done", job
    assert (job["images_added"], job["errors"], job["percent"]) == (3, 0, 100)
    assert job["faces_added"] >= 3 and job["run_id"] is not None
    listed = service.client.get("/api/v1/ingest/jobs", headers=service.as_user("admin")).json()
    assert started["job_id"] in [j["job_id"] for j in listed]

    # The API's index sees the new faces: a fourth photo of him finds them, with the upload's provenance.
    found = _search(service, _open_case(service), service.bush(4))
    assert found.status_code == 201, found.text
    top = found.json()["results"][0]["hits"][0]
    assert top["face"]["label"] == BUSH, top
    upload_dir = service.engine.settings.uploads_dir / started["job_id"]
    assert Path(top["face"]["asset_uri"]).parent == upload_dir.resolve()
    assert re.search(rf"/000[123]_upload_{BUSH}_000[123]\.jpg$", top["face"]["asset_uri"]), top["face"]
    face = service.client.get(
        f"/api/v1/faces/{top['face']['face_id']}",
        params={"case_id": found.json()["search"]["case_id"], "purpose": "check the provenance"},
        headers=service.as_user("reviewer"),
    )
    assert face.json()["legal_basis"] == "consent form 12"

    started_entries = [e for e in _audit(service, "ingest_job") if e["target"] == f"ingest_job:{started['job_id']}"]
    assert started_entries and started_entries[0]["actor"] == "admin"
    assert started_entries[0]["details"]["sources"] == [f"upload {p.name}" for p in photos]
    finished = [e for e in _audit(service, "ingest_job_finished") if e["target"] == started_entries[0]["target"]]
    assert finished and finished[0]["details"]["status"] == "done"


def test_a_server_path_job_inside_the_roots_runs(service: Service) -> None:
    folder = service.gallery.root / "examples" / "knn_examples" / "train" / "biden"
    response = service.client.post("/api/v1/ingest/jobs", data={"path": str(folder)}, headers=service.as_user("admin"))
    assert response.status_code == 202, response.text
    job = _finished(service, response.json()["job_id"])
    # Both photos of the folder are already in the gallery (same sha256): read, and skipped.
    assert job["status"] == "done" and job["images_seen"] == 2 and job["images_skipped"] == 2, job
    assert job["sources"] == [str(folder.resolve())] and job["kind"] == "path"


@pytest.mark.parametrize(
    "where",
    ["/etc", "lfw", "traversal", "url"],
)
def test_server_paths_outside_the_roots_are_refused(service: Service, where: str) -> None:
    path = {
        "/etc": "/etc",
        "lfw": str(service.lfw),
        "traversal": str(service.gallery.root / ".." / "lfw" / "manifest.csv"),
        "url": "https://example.org/photo.jpg",
    }[where]
    before = len(service.client.app.state.jobs.jobs())  # type: ignore[attr-defined]
    for field in ("path", "manifest"):
        response = service.client.post("/api/v1/ingest/jobs", data={field: path}, headers=service.as_user("admin"))
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
    assert len(service.client.app.state.jobs.jobs()) == before  # type: ignore[attr-defined]


def test_manifest_rows_outside_the_roots_are_refused_unread(service: Service) -> None:
    link = service.roots_dir / "link.jpg"
    link.symlink_to(service.bush(5))  # inside the root by name, outside once resolved
    manifest = service.roots_dir / "rows.csv"
    manifest.write_text(
        "uri,label\n"
        f"{service.bush(6)},{BUSH}\n"
        f"{link},{BUSH}\n"
        f"https://example.org/{BUSH}.jpg,{BUSH}\n"
        f"{service.gallery.paths_of('obama')[0]},obama\n",
        encoding="utf-8",
    )
    response = service.client.post(
        "/api/v1/ingest/jobs", data={"manifest": str(manifest)}, headers=service.as_user("admin")
    )
    assert response.status_code == 202, response.text
    job = _finished(service, response.json()["job_id"])
    assert job["status"] == "done", job
    refused = [m for m in job["error_messages"] if m.startswith("refused: ")]
    assert len(refused) == 3 and job["errors"] == 3, job
    assert job["images_added"] == 0 and job["images_skipped"] == 1  # the one row inside the roots, already known


@pytest.mark.parametrize(
    ("form", "files"),
    [
        ({}, None),
        ({"path": "x", "manifest": "y"}, None),
        ({"label": "someone"}, None),
        ({}, [("photos", (f"p{n}.jpg", b"x", "image/jpeg")) for n in range(101)]),
    ],
    ids=["nothing", "two-sources", "label-only", "too-many-photos"],
)
def test_an_ingest_job_needs_exactly_one_bounded_source(
    service: Service, form: dict[str, str], files: list[Any] | None
) -> None:
    response = service.client.post("/api/v1/ingest/jobs", data=form, files=files, headers=service.as_user("admin"))
    assert response.status_code == 422, response.text


def test_people_lists_labels_with_counts_and_shows_a_persons_faces(service: Service) -> None:
    within = {"case_id": _open_case(service, "People 1"), "purpose": "who is in the gallery"}
    listed = service.client.get(
        "/api/v1/people", params={**within, "limit": 500}, headers=service.as_user("investigator")
    )
    assert listed.status_code == 200, listed.text
    body = listed.json()
    counts = {p["label"]: p["faces"] for p in body["people"]}
    assert counts["obama"] == 3 and counts["biden"] == 2 and body["total"] == len(counts)
    assert [p["label"] for p in body["people"]] == sorted(counts)
    page = service.client.get(
        "/api/v1/people",
        params={"limit": 2, "offset": 1, "purpose": "erasure request 5"},
        headers=service.as_user("admin"),
    ).json()
    assert [p["label"] for p in page["people"]] == sorted(counts)[1:3]

    person = service.client.get("/api/v1/people/obama", params=within, headers=service.as_user("reviewer"))
    assert person.status_code == 200, person.text
    faces = person.json()["faces"]
    assert len(faces) == 3 and {f["label"] for f in faces} == {"obama"}
    assert {f["source_page"] for f in faces} == {"https://example.org/obama"}
    assert {Path(f["asset_uri"]) for f in faces} == {p.resolve() for p in service.gallery.paths_of("obama")}
    views = [e for e in _audit(service, "view_person") if e["target"] == "person:obama"]
    assert views and views[-1]["actor"] == "reviewer"
    assert sorted(views[-1]["details"]["face_ids"]) == sorted(f["face_id"] for f in faces)
    assert _audit(service, "list_people")
    missing = service.client.get(
        "/api/v1/people/nobody%20at%20all", params=within, headers=service.as_user("investigator")
    )
    assert missing.status_code == 404


def pdf_text(data: bytes) -> str:
    """The text drawn on a PDF's pages (fpdf2's built-in fonts write literal strings), one line per text run."""
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, flags=re.S)
    runs = []
    for stream in streams:
        try:
            content = zlib.decompress(stream)
        except zlib.error:
            content = stream
        for raw in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", content):
            runs.append(re.sub(rb"\\(.)", rb"\1", raw).decode("latin-1"))
    return " ".join(runs)


def test_the_pdf_report_holds_the_case_candidates_verdicts_and_decisions(service: Service) -> None:
    case_id = _open_case(service, "Doorbell 4")
    found = _search(service, case_id, service.gallery.probe)
    assert found.status_code == 201, found.text
    search_id = found.json()["search"]["search_id"]
    top = found.json()["results"][0]["hits"][0]
    reviewed = service.client.post(
        f"/api/v1/searches/{search_id}/reviews",
        json={"face_id": top["face"]["face_id"], "decision": "confirmed", "note": "same scar"},
        headers=service.as_user("reviewer"),
    )
    assert reviewed.status_code == 201, reviewed.text

    response = service.client.get(f"/api/v1/cases/{case_id}/report.pdf", headers=service.as_user("reviewer"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    data = response.content
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 1
    text = " ".join(pdf_text(data).split())
    assert "find the man on the bank camera" in text  # the case's purpose
    assert "warrant 2026/9" in text
    assert f"Finding 1: face {top['face']['face_id']}, obama" in text  # the confirmed candidate and its label
    assert " ".join(top["evidence"]["verdict"].split()) in text
    assert "Confirmed by reviewer" in text and "same scar" in text
    assert "2 candidates not reviewed" in text  # counted, not listed (include=unreviewed lists them)
    assert "Legal basis: not stated" in text and "https://example.org/obama" in text
    export = [e for e in _audit(service, "export") if e["target"] == f"case:{case_id}"][-1]
    assert export["details"]["format"] == "pdf" and export["actor"] == "reviewer"
    assert f"audit seq {export['seq']}" in text
    assert top["face"]["face_id"] in export["details"]["face_ids"]
    forbidden = service.client.get(f"/api/v1/cases/{case_id}/report.pdf", headers=service.as_user("auditor"))
    assert forbidden.status_code == 403


def test_a_closed_case_keeps_its_record_and_refuses_new_searches(service: Service) -> None:
    case_id = _open_case(service, "Closed 1")
    assert _search(service, case_id, service.gallery.probe).status_code == 201
    headers = service.as_user("investigator")
    blank = service.client.post(f"/api/v1/cases/{case_id}/close", json={"reason": "  "}, headers=headers)
    assert blank.status_code == 422
    closed = service.client.post(f"/api/v1/cases/{case_id}/close", json={"reason": "suspect charged"}, headers=headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    again = service.client.post(f"/api/v1/cases/{case_id}/close", json={"reason": "twice"}, headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    refused = _search(service, case_id, service.gallery.probe)
    assert refused.status_code == 409 and "closed" in refused.json()["error"]["message"]
    photo = (service.gallery.probe.name, service.gallery.probe.read_bytes(), "image/jpeg")
    compare = service.client.post(
        "/api/v1/compare",
        files={"a": photo, "b": photo},
        data={"case_id": str(case_id), "purpose": "p"},
        headers=headers,
    )
    assert compare.status_code == 409
    detail = service.client.get(f"/api/v1/cases/{case_id}", headers=service.as_user("auditor")).json()
    assert detail["case"]["status"] == "closed" and len(detail["searches"]) == 1
    entry = [e for e in _audit(service, "close_case") if e["target"] == f"case:{case_id}"]
    assert len(entry) == 1 and entry[0]["details"]["reason"] == "suspect charged"
    assert entry[0]["actor"] == "investigator"


# -- the web UI's pages for the same -------------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _signed_in(service: Service, name: str) -> TestClient:
    client = TestClient(service.client.app, raise_server_exceptions=False, follow_redirects=False)
    page = client.get("/ui/login")
    token = _CSRF.search(page.text)
    assert token
    signed = client.post("/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1)})
    assert signed.status_code == 303
    return client


def test_the_ui_uploads_a_job_and_lists_it_with_its_progress(service: Service) -> None:
    admin = _signed_in(service, "admin")
    page = admin.get("/ui/ingest")
    assert page.status_code == 200 and 'id="start-ingest"' in page.text
    token = _CSRF.search(page.text)
    assert token
    photo = service.bush(7)
    posted = admin.post(
        "/ui/ingest",
        files=[("photos", (photo.name, photo.read_bytes(), "image/jpeg"))],
        data={"label": BUSH, "csrf_token": token.group(1)},
    )
    assert posted.status_code == 303 and posted.headers["location"] == "/ui/ingest"
    job = service.client.app.state.jobs.jobs()[0]  # type: ignore[attr-defined]
    assert job.sources == [photo.name] and job.started_by == "admin"
    listing = admin.get("/ui/ingest").text
    assert job.job_id in listing
    if not job.finished:
        assert 'http-equiv="refresh"' in listing
    done = service.client.app.state.jobs.wait(job.job_id, JOB_TIMEOUT_S)  # type: ignore[attr-defined]
    assert done is not None and done.status == "done" and done.images_added == 1
    final = admin.get("/ui/ingest").text
    assert 'http-equiv="refresh"' not in final and "1 image(s), 1 face(s)" in final
    forged = admin.post("/ui/ingest", files=[("photos", (photo.name, b"x", "image/jpeg"))], data={"csrf_token": "x"})
    assert forged.status_code == 403


def test_the_ui_closes_a_case_and_serves_its_pdf(service: Service) -> None:
    case_id = _open_case(service, "UI close")
    investigator = _signed_in(service, "investigator")
    page = investigator.get(f"/ui/cases/{case_id}")
    assert 'id="close-case"' in page.text and 'id="report-pdf-link"' in page.text
    token = _CSRF.search(page.text)
    assert token
    pdf = investigator.get(f"/ui/cases/{case_id}/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    closed = investigator.post(f"/ui/cases/{case_id}/close", data={"reason": "done", "csrf_token": token.group(1)})
    assert closed.status_code == 303
    after = investigator.get(f"/ui/cases/{case_id}").text
    assert 'id="close-case"' not in after and 'id="run-search"' not in after and "closed" in after


def test_erasing_a_person_removes_the_servers_uploaded_copies(service: Service) -> None:
    """Runs after the upload tests: it erases the person they ingested."""
    uploads = service.engine.settings.uploads_dir
    before = sorted(uploads.rglob("*.jpg"))
    assert before, "the upload tests left no uploaded photos"
    response = service.client.post(
        "/api/v1/erasures/person", json={"label": BUSH, "reason": "request 77"}, headers=service.as_user("admin")
    )
    assert response.status_code == 201, response.text
    assert not sorted(uploads.rglob("*.jpg"))
    entry = next(e for e in _audit(service, "erase") if e["seq"] == response.json()["audit_seq"])
    assert entry["details"]["uploads_removed"] == len(before)
    # Photos outside the uploads folder are the operator's: untouched.
    assert service.bush(1).exists()


def test_stopping_the_server_ends_the_running_job_and_fails_the_queued_ones(service: Service) -> None:
    """A queue of its own on the same engine: the app's queue must keep accepting jobs for the other tests."""
    admin = service.engine.users.user("admin")
    jobs = JobQueue(service.engine)
    photos = [service.lfw / "lfw-deepfunneled" / "Colin_Powell" / f"Colin_Powell_{n:04d}.jpg" for n in (1, 2, 3, 4)]
    running = jobs.submit_uploads(admin, [Upload(p.name, p.read_bytes()) for p in photos[:3]])
    queued = jobs.submit_uploads(admin, [Upload(photos[3].name, photos[3].read_bytes())])
    jobs.stop(timeout=JOB_TIMEOUT_S)
    first, second = jobs.job(running.job_id), jobs.job(queued.job_id)
    assert first is not None and second is not None
    assert first.finished and (first.status == "done" or first.message == STOPPED_MESSAGE)
    assert (second.status, second.message, second.images_seen) == ("failed", STOPPED_MESSAGE, 0)
    with pytest.raises(InvalidRequestError, match="stopping"):
        jobs.submit_uploads(admin, [Upload(photos[3].name, photos[3].read_bytes())])
    finished = [e for e in _audit(service, "ingest_job_finished") if e["target"] == f"ingest_job:{queued.job_id}"]
    assert finished and finished[0]["details"]["status"] == "failed"
