"""Admin ingest beyond a plain upload, on a real engine with real models: photos uploaded with a manifest (UI and
API) land in the catalog with each row's label and provenance; a manifest row naming no uploaded photo, or a photo
no row names, refuses the job before anything is queued or kept; a server folder inside the ingest roots is ingested
from the UI and one outside them is refused."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import SmallGallery
from facetrace.core.types import AuditQuery
from facetrace.core.vocabulary import AuditAction, JobStatus
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.jobs import JobQueue
from facetrace.server.passwords import Argon2Hasher

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
JOB_TIMEOUT_S = 300.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
OBAMA = "examples/knn_examples/train/obama/obama.jpg"
BIDEN = "examples/knn_examples/train/biden/biden.jpg"
ROSE = "examples/knn_examples/train/rose_leslie/img1.jpg"
KIT = "examples/knn_examples/train/kit_harington/john1.jpeg"


@dataclass
class Admin:
    engine: Engine
    client: TestClient
    csrf: str
    api_key: str
    photos: Path
    root: Path  # the one ingest root

    @property
    def jobs(self) -> JobQueue:
        jobs: JobQueue = self.client.app.state.jobs  # type: ignore[attr-defined]
        return jobs

    def photo(self, relative: str, name: str | None = None) -> tuple[str, tuple[str, bytes, str]]:
        path = self.photos / relative
        return ("photos", (name or path.name, path.read_bytes(), "image/jpeg"))

    def finished(self, job_id: str) -> JobStatus:
        job = self.jobs.wait(job_id, JOB_TIMEOUT_S)
        assert job is not None and job.finished, job
        return job.status


@pytest.fixture(scope="module")
def admin(fr_examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    root = tmp_path_factory.mktemp("ingest-root")
    engine = open_engine(tmp_path_factory.mktemp("admin-ingest") / "data", workers=1, ingest_roots=(root,))
    key = engine.users.add_user("root", "admin", "cli:test", password=PASSWORD, hasher=Argon2Hasher()).api_key
    with TestClient(create_app(engine), raise_server_exceptions=False, follow_redirects=False) as client:
        page = client.get("/ui/login")
        token = _CSRF.search(page.text)
        assert token
        signed = client.post(
            "/ui/login", data={"username": "root", "password": PASSWORD, "csrf_token": token.group(1), "next": "/ui/"}
        )
        assert signed.status_code == 303
        session_token = _CSRF.search(client.get("/ui/ingest").text)
        assert session_token
        yield Admin(engine, client, session_token.group(1), key, fr_examples, root)
    engine.close()


def _newest_job_id(admin: Admin) -> str:
    return admin.jobs.jobs()[0].job_id


def test_a_manifest_uploaded_with_its_photos_gives_each_its_label_and_provenance(admin: Admin) -> None:
    manifest = (
        "uri,label,source_page,captured_at,legal_basis,photographer\n"
        "obama.jpg,Barack Obama,https://example.org/obama,2012-11-06,press licence 4,Pete Souza\n"
        'biden.jpg,Joe Biden,https://example.org/biden,2013-01-20,"consent form 9, signed",\n'
    )
    response = admin.client.post(
        "/ui/ingest",
        files=[admin.photo(OBAMA), admin.photo(BIDEN), ("manifest", ("people.csv", manifest.encode(), "text/csv"))],
        data={"csrf_token": admin.csrf, "label": "ignored: every row has one", "legal_basis": ""},
    )
    assert response.status_code == 303, response.text
    job_id = _newest_job_id(admin)
    assert admin.finished(job_id) == JobStatus.DONE
    job = admin.jobs.job(job_id)
    assert job is not None and job.kind == "manifest" and job.images_added == 2 and job.errors == 0
    assert job.sources == ["people.csv", "obama.jpg", "biden.jpg"]
    catalog = admin.engine.catalog
    (obama,) = catalog.faces_by_id(catalog.face_ids_labelled("Barack Obama")).values()
    (biden,) = catalog.faces_by_id(catalog.face_ids_labelled("Joe Biden")).values()
    assert (obama.source_page, obama.legal_basis) == ("https://example.org/obama", "press licence 4")
    assert obama.captured_at is not None and obama.captured_at.date().isoformat() == "2012-11-06"
    assert (biden.source_page, biden.legal_basis) == ("https://example.org/biden", "consent form 9, signed")
    uploads = admin.engine.settings.uploads_dir / job_id
    assert Path(obama.asset_uri).parent == uploads.resolve() and (uploads / "manifest.csv").read_text() == manifest
    started = admin.engine.audit.find(AuditQuery(actions=(AuditAction.INGEST_JOB,)), limit=1)[0]
    assert started.target == f"ingest_job:{job_id}" and started.details["kind"] == "manifest"


def test_the_api_takes_a_jsonl_manifest_with_the_photos(admin: Admin) -> None:
    rows = [
        {"uri": "rose.jpg", "label": "Rose Leslie", "source_page": "https://example.org/rose"},
        {"uri": "kit.jpeg", "source_page": "https://example.org/kit", "captured_at": "2015-04-01"},
    ]
    manifest = "\n".join(json.dumps(row) for row in rows).encode()
    response = admin.client.post(
        "/api/v1/ingest/jobs",
        headers={"X-API-Key": admin.api_key},
        files=[
            admin.photo(ROSE, "rose.jpg"),
            admin.photo(KIT, "kit.jpeg"),
            ("manifest_file", ("rows.jsonl", manifest, "application/jsonl")),
        ],
        data={"label": "Kit Harington", "legal_basis": "licence 77"},
    )
    assert response.status_code == 202, response.text
    assert admin.finished(response.json()["job_id"]) == JobStatus.DONE
    catalog = admin.engine.catalog
    (rose,) = catalog.faces_by_id(catalog.face_ids_labelled("Rose Leslie")).values()
    (kit,) = catalog.faces_by_id(catalog.face_ids_labelled("Kit Harington")).values()  # the form's label fills in
    assert (rose.source_page, rose.legal_basis) == ("https://example.org/rose", "licence 77")
    assert kit.captured_at is not None and kit.captured_at.year == 2015


def test_a_row_naming_a_missing_upload_refuses_the_job_and_keeps_nothing(admin: Admin) -> None:
    uploads = admin.engine.settings.uploads_dir
    folders_before = sorted(uploads.iterdir()) if uploads.exists() else []
    jobs_before = len(admin.jobs.jobs())
    manifest = "uri,label\nobama.jpg,Barack Obama\nnobody.jpg,No One\n../../etc/passwd,Escape\n"
    page = admin.client.post(
        "/ui/ingest",
        files=[admin.photo(OBAMA), admin.photo(BIDEN), ("manifest", ("m.csv", manifest.encode(), "text/csv"))],
        data={"csrf_token": admin.csrf},
    )
    assert page.status_code == 422
    assert str(admin.engine.settings.data) not in page.text  # the server's own paths are not shown
    assert "m.csv: row 2 names &#39;nobody.jpg&#39;: no uploaded photo has that name" in page.text
    assert "row 3 names &#39;../../etc/passwd&#39;: no uploaded photo" in page.text  # outside the upload
    assert "photos no row names: biden.jpg" in page.text
    assert len(admin.jobs.jobs()) == jobs_before
    assert (sorted(uploads.iterdir()) if uploads.exists() else []) == folders_before
    not_a_manifest = admin.client.post(
        "/ui/ingest",
        files=[admin.photo(OBAMA), ("manifest", ("m.txt", b"uri\nobama.jpg\n", "text/plain"))],
        data={"csrf_token": admin.csrf},
    )
    assert not_a_manifest.status_code == 422 and "a manifest ends in .csv" in not_a_manifest.text
    malformed = admin.client.post(
        "/ui/ingest",
        files=[admin.photo(OBAMA), ("manifest", ("m.csv", b"uri,captured_at\nobama.jpg,last week\n", "text/csv"))],
        data={"csrf_token": admin.csrf},
    )
    assert malformed.status_code == 422 and "m.csv:2: captured_at &#39;last week&#39; is not an ISO 8601" in (
        malformed.text
    )
    assert len(admin.jobs.jobs()) == jobs_before


def test_a_server_folder_inside_the_roots_is_ingested_and_one_outside_refused(admin: Admin, tmp_path: Path) -> None:
    page = admin.client.get("/ui/ingest")
    assert str(admin.root) in page.text and 'id="server-form"' in page.text
    inside = admin.root / "batch"
    inside.mkdir()
    (inside / "obama2.jpg").write_bytes((admin.photos / "examples/knn_examples/train/obama/obama2.jpg").read_bytes())
    started = admin.client.post(
        "/ui/ingest/server",
        data={"csrf_token": admin.csrf, "path": str(inside), "kind": "folder", "label": "Barack Obama"},
    )
    assert started.status_code == 303, started.text
    job_id = _newest_job_id(admin)
    assert admin.finished(job_id) == JobStatus.DONE
    assert len(admin.engine.catalog.face_ids_labelled("Barack Obama")) == 2
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    jobs_before = len(admin.jobs.jobs())
    refused = admin.client.post(
        "/ui/ingest/server", data={"csrf_token": admin.csrf, "path": str(outside), "kind": "folder"}
    )
    assert refused.status_code == 422 and "is outside the ingest roots" in refused.text
    sneaky = admin.client.post(
        "/ui/ingest/server", data={"csrf_token": admin.csrf, "path": f"{inside}/../../..", "kind": "manifest"}
    )
    assert sneaky.status_code == 422 and "is outside the ingest roots" in sneaky.text
    assert len(admin.jobs.jobs()) == jobs_before
    since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    denials = admin.engine.audit.find(AuditQuery(actor="root", actions=(AuditAction.DENIED,), since=since))
    assert any(str(outside) in str(entry.details["reason"]) for entry in denials)


def test_the_page_without_roots_says_how_to_allow_server_folders(small_gallery: SmallGallery, tmp_path: Path) -> None:
    with open_engine(tmp_path / "data", workers=1) as engine:
        engine.users.add_user("root", "admin", "cli:test", password=PASSWORD, hasher=Argon2Hasher())
        with TestClient(create_app(engine), raise_server_exceptions=False, follow_redirects=False) as client:
            token = _CSRF.search(client.get("/ui/login").text)
            assert token
            client.post("/ui/login", data={"username": "root", "password": PASSWORD, "csrf_token": token.group(1)})
            page = client.get("/ui/ingest")
            token = _CSRF.search(page.text)
            assert token
            assert 'id="no-roots"' in page.text and "FACETRACE_INGEST_ROOTS" in page.text
            refused = client.post(
                "/ui/ingest/server",
                data={"csrf_token": token.group(1), "path": str(small_gallery.root), "kind": "folder"},
            )
            assert refused.status_code == 422 and "ingest from server paths is disabled" in refused.text
            assert client.app.state.jobs.jobs() == []  # type: ignore[attr-defined]
