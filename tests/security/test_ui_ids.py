"""Ids out of the catalog's 64-bit range, in the web UI's paths, forms and queries, are a 422 page saying what is
wrong, never a 500 (an OverflowError binding 2**70 used to escape from the erasure and audit pages). The test walks
every UI route that takes an id."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from facetrace.core.vocabulary import Role
from facetrace.engine import open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.ui.admin import router as admin_router
from facetrace.server.ui.audit_pages import router as audit_router
from facetrace.server.ui.compare import router as compare_router
from facetrace.server.ui.jobs_pages import router as jobs_router
from facetrace.server.ui.members import router as members_router
from facetrace.server.ui.people import router as people_router
from facetrace.server.ui.review import router as review_router
from facetrace.server.ui.routes import router as ui_router

HUGE = str(2**70)
# A receipt id is a string, not a catalog id.
_ID_PARAM = r"\{(case_id|search_id|face_id|key_id|face_index|cluster_id)\}"
PASSWORD = "a-long-password-1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Form fields that carry an id or a face number, and the routes whose forms have them.
ID_FIELDS = {
    "/searches/{search_id}/reviews": {"face_id": HUGE, "decision": "confirmed"},
    "/review/searches/{search_id}/decisions": {"face_id": HUGE, "decision": "confirmed"},
    "/review/searches/{search_id}/reject-rest": {"face_ids": HUGE},
    "/admin/erasures/faces": {"face_ids": f"1, {HUGE}", "reason": "a request"},
    "/admin/erasures/photo": {"face_index": HUGE, "reason": "a request"},
    "/compare": {"case_id": HUGE, "purpose": "p"},
    "/people/merge": {"cluster_id": ["1", HUGE]},
    "/people/cluster": {"case_id": HUGE},
    "/people/label/erase": {"label": "someone", "face_id": HUGE},
}
PHOTO_FIELDS = {"/admin/erasures/photo": ("photo",), "/compare": ("a", "b"), "/cases/{case_id}/searches": ("probe",)}


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every UI route with an id in its path or its form."""
    found = []
    for router in (
        ui_router,
        admin_router,
        compare_router,
        jobs_router,
        people_router,
        review_router,
        audit_router,
        members_router,
    ):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            has_id = re.search(_ID_PARAM, route.path) is not None
            for method in route.methods:
                if has_id or (method == "POST" and route.path in ID_FIELDS):
                    found.append((method, route.path))
    return sorted(found)


@pytest.fixture(scope="module")
def browsers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[TestClient, str]]]:
    engine = open_engine(tmp_path_factory.mktemp("ui-ids") / "data", workers=1)
    for name, role in [("root", Role.ADMIN), ("ivan", Role.INVESTIGATOR), ("olga", Role.AUDITOR)]:
        engine.users.add_user(name, role, "test", password=PASSWORD, hasher=Argon2Hasher())
    app = create_app(engine)
    signed: dict[str, tuple[TestClient, str]] = {}
    for name in ("root", "ivan", "olga"):
        client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        token = _CSRF.search(client.get("/ui/login").text)
        assert token
        answer = client.post("/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1)})
        assert answer.status_code == 303
        page = client.get("/ui/audit" if name != "ivan" else "/ui/cases")
        csrf = _CSRF.search(page.text)
        assert csrf
        signed[name] = (client, csrf.group(1))
    yield signed
    for client, _ in signed.values():
        client.close()
    engine.close()


def test_the_walk_covers_the_routes_that_take_ids() -> None:
    paths = {path for _, path in _routes()}
    assert {"/cases/{case_id}", "/searches/{search_id}/probe-faces/{face_index}", "/admin/erasures/faces"} <= paths
    assert len(paths) >= 12


@pytest.mark.parametrize(("method", "path"), _routes(), ids=lambda v: v)
def test_an_id_of_2_to_the_70_is_a_422_page_not_a_500(
    browsers: dict[str, tuple[TestClient, str]], method: str, path: str
) -> None:
    who = "root" if path.startswith(("/admin", "/ingest", "/people")) else "ivan"
    client, csrf = browsers[who]
    url = "/ui" + re.sub(_ID_PARAM, HUGE, path).replace("{name}", "ivan")
    if method == "GET":
        answer = client.get(url)
    else:
        files: dict[str, Any] = {
            name: (f"{name}.jpg", b"\xff\xd8 not read", "image/jpeg") for name in PHOTO_FIELDS.get(path, ())
        }
        data = {"csrf_token": csrf, "purpose": "p", "reason": "r", **ID_FIELDS.get(path, {})}
        answer = client.post(url, data=data, files=files or None)
    assert answer.status_code == 422, (answer.status_code, answer.text[:500])
    assert "Something went wrong" not in answer.text
    assert re.search(r"not valid|whole number", answer.text), answer.text[:500]


def test_an_audit_page_before_or_case_of_2_to_the_70_is_a_422(browsers: dict[str, tuple[TestClient, str]]) -> None:
    client, _ = browsers["olga"]
    assert client.get(f"/ui/audit?before={HUGE}").status_code == 422
    assert client.get("/ui/audit?before=1").status_code == 200
    for url in (f"/ui/audit?case_id={HUGE}", f"/ui/audit.csv?case_id={HUGE}"):
        answer = client.get(url)
        assert answer.status_code == 422 and "whole number" in answer.text, url
    assert client.get("/ui/audit?case_id=1").status_code == 200
