"""Reads and denials are in the audit log: who read a case, a search, the audit log, an erasure receipt or an ingest
job (API and web UI), and who was refused what (403). A page read again within a minute by the same reader is
folded into one entry (the ingest page reloads itself every 3 s; a page's thumbnails never add a view_case)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from facetrace.core.types import AnalyzedFace, AuditEntry, BoundingBox, Detection, Embedding, FaceQuality, MediaAsset
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.reads import ReadLog

PASSWORD = "a-long-password-1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class World:
    engine: Engine
    app: object
    keys: dict[str, str]
    case_id: int
    search_id: int
    receipt_id: str
    job_id: str
    browsers: dict[str, TestClient]


def _stored_face(engine: Engine) -> int:
    """One face stored through the catalog (no models needed), to erase for a receipt."""
    vector = np.zeros(engine.pack.embedding_dim, dtype=np.float32)
    vector[0] = 1.0
    quality = FaceQuality(
        score=1.0, face_size_px=112.0, sharpness=1.0, detection_score=1.0, yaw_deg=0.0, roll_deg=0.0, flags=()
    )
    face = AnalyzedFace(
        Detection(BoundingBox(0.0, 0.0, 112.0, 112.0), np.zeros((5, 2), dtype=np.float32), 1.0),
        quality,
        Embedding(engine.model_id, vector),
    )
    run_id = engine.catalog.start_run("test", engine.model_id)
    _, ids = engine.catalog.add_asset_with_faces(
        run_id, MediaAsset(sha256="a" * 64, uri="test://one"), [face], engine.model_id
    )
    engine.catalog.finish_run(run_id, "finished", {})
    return ids[0]


def _browser(app: object, name: str) -> TestClient:
    client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)  # type: ignore[arg-type]
    token = _CSRF.search(client.get("/ui/login").text)
    assert token
    answer = client.post("/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1)})
    assert answer.status_code == 303
    return client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("reads")
    (root / "empty").mkdir()
    engine = open_engine(root / "data", workers=1, ingest_roots=(root,))
    keys = {}
    for name, role in [
        ("root", Role.ADMIN),
        ("ivan", Role.INVESTIGATOR),
        ("olga", Role.AUDITOR),
        ("rita", Role.REVIEWER),
    ]:
        keys[name] = engine.users.add_user(name, role, "test", password=PASSWORD, hasher=Argon2Hasher()).api_key
    ivan = engine.users.user("ivan")
    case = engine.cases.open_case(ivan, "Case", "purpose", "warrant")
    search = engine.cases.record_search(ivan, case, "why", "0" * 64, "probe.jpg", engine.model_id, None, [])
    receipt = engine.erasure.erase_faces("root", [_stored_face(engine)], "a request")
    app = create_app(engine)
    with TestClient(app) as admin:
        job = admin.post("/api/v1/ingest/jobs", headers={"X-API-Key": keys["root"]}, data={"path": str(root / "empty")})
        assert job.status_code == 202, job.text
    browsers = {name: _browser(app, name) for name in ("root", "ivan", "olga")}
    yield World(engine, app, keys, case.case_id, search.search_id, receipt.receipt_id, job.json()["job_id"], browsers)
    for client in browsers.values():
        client.close()
    engine.close()


def _new_entries(world: World, since: int) -> list[AuditEntry]:
    return world.engine.audit.entries(since)


def _api_get(world: World, who: str, path: str) -> int:
    with TestClient(world.app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        return client.get(path, headers={"X-API-Key": world.keys[who]}).status_code


READS = [
    ("ivan", "/api/v1/cases", AuditAction.LIST_CASES, "cases"),
    ("ivan", "/api/v1/cases/{case}", AuditAction.VIEW_CASE, "case:{case}"),
    ("olga", "/api/v1/searches/{search}", AuditAction.VIEW_SEARCH, "search:{search}"),
    ("olga", "/api/v1/audit?after_seq=3&limit=5", AuditAction.READ_AUDIT, "audit"),
    ("olga", "/api/v1/audit/verify", AuditAction.READ_AUDIT, "audit:verify"),
    ("olga", "/api/v1/audit/head", AuditAction.READ_AUDIT, "audit:head"),
    ("olga", "/api/v1/audit/repeated-probes", AuditAction.READ_AUDIT, "audit:repeated-probes"),
    ("olga", "/api/v1/erasures", AuditAction.LIST_RECEIPTS, "erasures"),
    ("olga", "/api/v1/erasures/{receipt}", AuditAction.VIEW_RECEIPT, "receipt:{receipt}"),
    ("root", "/api/v1/ingest/jobs", AuditAction.LIST_JOBS, "ingest_jobs"),
    ("root", "/api/v1/ingest/jobs/{job}", AuditAction.VIEW_JOB, "job:{job}"),
    ("ivan", "/ui/cases", AuditAction.LIST_CASES, "cases"),
    ("ivan", "/ui/cases/{case}", AuditAction.VIEW_CASE, "case:{case}"),
    ("ivan", "/ui/searches/{search}", AuditAction.VIEW_SEARCH, "search:{search}"),
    ("olga", "/ui/audit", AuditAction.READ_AUDIT, "audit"),
    ("olga", "/ui/audit/repeated-probes", AuditAction.READ_AUDIT, "audit:repeated-probes"),
    ("olga", "/ui/admin/erasures", AuditAction.LIST_RECEIPTS, "erasures"),
    ("olga", "/ui/admin/erasures/{receipt}", AuditAction.VIEW_RECEIPT, "receipt:{receipt}"),
    ("root", "/ui/ingest", AuditAction.LIST_JOBS, "ingest_jobs"),
]


@pytest.mark.parametrize(("who", "path", "action", "target"), READS, ids=[f"{r[0]} {r[1]}" for r in READS])
def test_each_read_is_one_audit_entry_and_a_repeat_is_folded(
    world: World, who: str, path: str, action: AuditAction, target: str
) -> None:
    names = {"case": world.case_id, "search": world.search_id, "receipt": world.receipt_id, "job": world.job_id}
    url, target = path.format(**names), target.format(**names)
    world.app.state.reads._last.clear()  # type: ignore[attr-defined]  # each read starts unfolded
    since = world.engine.audit.head().seq
    for _ in range(3):  # a reload, a self-refreshing page
        if url.startswith("/api/"):
            assert _api_get(world, who, url) == 200
        else:
            assert world.browsers[who].get(url).status_code == 200
    reads = [e for e in _new_entries(world, since) if e.action == action]
    assert [(e.actor, e.target) for e in reads] == [(who, target)]


def test_a_case_page_is_one_view_case_however_many_images_it_shows(world: World) -> None:
    world.app.state.reads._last.clear()  # type: ignore[attr-defined]
    since = world.engine.audit.head().seq
    browser = world.browsers["ivan"]
    assert browser.get(f"/ui/cases/{world.case_id}").status_code == 200
    for _ in range(5):
        browser.get("/ui/faces/1/thumbnail")
    actions = [e.action for e in _new_entries(world, since)]
    assert actions.count(AuditAction.VIEW_CASE) == 1


def test_a_missing_thing_is_not_recorded_as_read(world: World) -> None:
    since = world.engine.audit.head().seq
    assert _api_get(world, "ivan", "/api/v1/cases/999") == 404
    assert not [e for e in _new_entries(world, since) if e.action == AuditAction.VIEW_CASE]


def test_reads_fold_only_within_the_window() -> None:
    clock = [0.0]
    recorded: list[tuple[str, str, str]] = []

    class Log:
        def record(self, actor: str, action: str, target: str, **_: object) -> None:
            recorded.append((actor, action, target))

    from facetrace.core.types import User

    reads = ReadLog(Log(), fold_s=60.0, clock=lambda: clock[0])  # type: ignore[arg-type]
    olga = User(user_id=1, name="olga", role=Role.AUDITOR, active=True, created_at=None)  # type: ignore[arg-type]
    assert reads.read(olga, AuditAction.READ_AUDIT, "audit")
    clock[0] = 59.0
    assert not reads.read(olga, AuditAction.READ_AUDIT, "audit")
    assert reads.read(olga, AuditAction.VIEW_CASE, "case:1")  # another thing read is its own entry
    clock[0] = 60.0
    assert reads.read(olga, AuditAction.READ_AUDIT, "audit")  # a minute after the last one recorded
    assert len(recorded) == 3


@pytest.mark.parametrize(
    ("channel", "who", "method", "path"),
    [
        ("api", "rita", "POST", "/api/v1/cases"),
        ("api", "ivan", "GET", "/api/v1/audit"),
        ("ui", "ivan", "GET", "/ui/audit"),
        ("ui", "olga", "GET", "/ui/ingest"),
    ],
)
def test_a_403_denial_records_who_tried_what(world: World, channel: str, who: str, method: str, path: str) -> None:
    since = world.engine.audit.head().seq
    if channel == "api":
        with TestClient(world.app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
            body = {"title": "t", "purpose": "p", "legal_basis": "l"} if method == "POST" else None
            status = client.request(method, path, headers={"X-API-Key": world.keys[who]}, json=body).status_code
    else:
        status = world.browsers[who].request(method, path).status_code
    assert status == 403
    denials = [e for e in _new_entries(world, since) if e.action == AuditAction.DENIED]
    assert len(denials) == 1
    denial = denials[0]
    assert (denial.actor, denial.target) == (who, f"{method} {path}")
    assert denial.details["role"] == world.engine.users.user(who).role and "needs" in str(denial.details["reason"])
