"""The web UI with the TestClient on a real engine over the small gallery: every UI route against every role
(signed out -> sign-in redirect, wrong role -> 403 page), sessions and CSRF, the four-eyes rule, and the audit
entries that views and exports leave."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from conftest import SmallGallery
from facetrace.core.errors import AuthenticationError
from facetrace.core.evidence import describe, headline
from facetrace.core.types import Evidence, ProbeResult, SearchHit, Strength
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.ui.admin import router as admin_router
from facetrace.server.ui.audit_pages import router as audit_router
from facetrace.server.ui.compare import router as compare_router
from facetrace.server.ui.jobs_pages import router as ui_jobs_router
from facetrace.server.ui.members import router as members_router
from facetrace.server.ui.people import router as people_router
from facetrace.server.ui.review import router as review_router
from facetrace.server.ui.routes import router as ui_router
from facetrace.server.ui.searches import router as searches_router
from facetrace.server.ui.sessions import SESSION_COOKIE

pytestmark = pytest.mark.slow

ROLES = ("admin", "investigator", "reviewer", "auditor")
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Ui:
    engine: Engine
    clients: dict[str, TestClient]  # signed in, by user name (named after their role, plus "investigator2")
    anonymous: TestClient
    case_id: int
    search_id: int
    face_id: int  # the top candidate of the search

    def csrf(self, name: str) -> str:
        page = self.clients[name].get("/ui/cases" if name != "admin" else "/ui/audit")
        match = _CSRF.search(page.text)
        assert match, page.text
        return match.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    page = client.get("/ui/login")
    token = _CSRF.search(page.text)
    assert page.status_code == 200 and token
    return client.post(
        "/ui/login", data={"username": name, "password": password, "csrf_token": token.group(1), "next": "/ui/cases"}
    )


@pytest.fixture(scope="module")
def ui(small_gallery: SmallGallery, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    # The table walks every route for every role: more requests a minute than a user's rate budget, whose own
    # tests are tests/security/test_ui_rate_limits.py.
    engine = open_engine(
        tmp_path_factory.mktemp("ui") / "data", workers=1, api_requests_per_minute=0, search_requests_per_minute=0
    )
    assert engine.ingest.run(manifests=[small_gallery.manifest]).errors == 0
    hasher = Argon2Hasher()
    for name, role in [*((role, role) for role in ROLES), ("investigator2", "investigator")]:
        engine.users.add_user(name, role, "cli:test", password=PASSWORD, hasher=hasher)
    app = create_app(engine)
    clients = {}
    for name in [*ROLES, "investigator2"]:
        client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        assert sign_in(client, name).status_code == 303
        clients[name] = client
    anonymous = TestClient(app, raise_server_exceptions=False, follow_redirects=False)

    investigator = clients["investigator"]
    token = _CSRF.search(investigator.get("/ui/cases").text)
    assert token
    opened = investigator.post(
        "/ui/cases",
        data={
            "title": "Burglary 17",
            "purpose": "identify the suspect",
            "legal_basis": "warrant 2026/17",
            "requires_independent_review": "1",
            "csrf_token": token.group(1),
        },
    )
    assert opened.status_code == 303, opened.text
    case_id = int(opened.headers["location"].rsplit("/", 1)[1])
    searched = investigator.post(
        f"/ui/cases/{case_id}/searches",
        files={"probe": (small_gallery.probe.name, small_gallery.probe.read_bytes(), "image/jpeg")},
        data={"purpose": "who is on the doorbell camera", "top_k": "3", "csrf_token": token.group(1)},
    )
    assert searched.status_code == 303, searched.text
    search_id = int(searched.headers["location"].rsplit("/", 1)[1])
    record = engine.cases.search(search_id)
    # Access by case: the reviewer and the other investigator work in the case once an admin adds them.
    admin = engine.users.user("admin")
    for member in ("reviewer", "investigator2"):
        engine.cases.add_member(admin, case_id, member)
    yield Ui(engine, clients, anonymous, case_id, search_id, record.hits[0].face_id)
    for client in [*clients.values(), anonymous]:
        client.close()
    engine.close()


READERS = {"investigator", "reviewer", "auditor"}
VIEWERS = {"investigator", "reviewer"}
LOOKERS = {"investigator", "reviewer", "admin"}  # the people view (admins: for erasure, with a purpose)
CHANGERS = {"reviewer", "admin"}  # rename, merge, split, hide people
# Every UI route (but sign-in and sign-out, tested below), who may use it, and a harmless request when allowed.
ROUTES: list[tuple[str, str, set[str], dict[str, Any]]] = [
    ("GET", "/ui/", set(ROLES), {}),
    ("GET", "/ui/cases", READERS, {}),
    ("POST", "/ui/cases", {"investigator"}, {"data": {"title": " ", "purpose": "p", "legal_basis": "l"}}),
    ("GET", "/ui/cases/{case}", READERS, {}),
    ("POST", "/ui/cases/{case}/searches", {"investigator"}, {"data": {"purpose": "p"}}),
    ("GET", "/ui/cases/{case}/report", VIEWERS, {}),
    ("GET", "/ui/searches/{search}", READERS, {}),
    (
        "POST",
        "/ui/searches/{search}/reviews",
        {"reviewer", "investigator"},
        {"data": {"face_id": "1", "decision": "x"}},
    ),
    ("GET", "/ui/searches/{search}/compare/{face}", VIEWERS, {}),
    ("GET", "/ui/searches/{search}/probe-faces/0", VIEWERS, {}),
    ("GET", "/ui/faces/{face}/thumbnail?search_id={search}", VIEWERS, {}),
    ("GET", "/ui/searches/{search}/photos/{face}", VIEWERS, {}),
    ("GET", "/ui/cases/{case}/probes/{token}", {"investigator"}, {}),
    ("GET", "/ui/cases/{case}/probes/{token}/photo", {"investigator"}, {}),
    ("GET", "/ui/audit", {"auditor", "admin"}, {}),
    ("GET", "/ui/audit.csv", {"auditor", "admin"}, {}),
    ("POST", "/ui/ingest/server", {"admin"}, {"data": {"path": "/nowhere", "kind": "folder"}}),
    ("GET", "/ui/audit/transparency", {"auditor", "admin"}, {}),
    ("GET", "/ui/audit/repeated-probes", {"auditor"}, {}),
    ("GET", "/ui/compare", {"investigator"}, {}),
    ("POST", "/ui/compare", {"investigator"}, {"data": {"case_id": "999", "purpose": "p"}}),
    ("GET", "/ui/admin/users", {"admin", "auditor"}, {}),
    ("POST", "/ui/admin/users", {"admin"}, {"data": {"name": " ", "role": "nope"}}),
    ("POST", "/ui/admin/users/{user}/deactivate", {"admin"}, {}),
    ("POST", "/ui/admin/users/{user}/password", {"admin"}, {"data": {"password": "short"}}),
    ("POST", "/ui/admin/users/{user}/keys", {"admin"}, {}),
    ("POST", "/ui/admin/users/{user}/keys/{key}/revoke", {"admin"}, {}),
    ("GET", "/ui/admin/cases", {"admin"}, {}),
    ("POST", "/ui/admin/cases/{case}/members", {"admin"}, {"data": {"name": "nobody"}}),
    ("POST", "/ui/admin/cases/{case}/members/{user}/remove", {"admin"}, {}),
    ("GET", "/ui/admin/erasures", {"admin", "auditor"}, {}),
    ("POST", "/ui/admin/erasures/faces", {"admin"}, {"data": {"face_ids": "999999", "reason": "r"}}),
    ("POST", "/ui/admin/erasures/person", {"admin"}, {"data": {"label": "nobody at all", "reason": "r"}}),
    ("POST", "/ui/admin/erasures/photo", {"admin"}, {"data": {"reason": "r"}}),
    ("POST", "/ui/admin/erasures/confirm", {"admin"}, {"data": {"preview_id": "none", "reason": "r"}}),
    ("GET", "/ui/admin/erasures/{receipt}", {"admin", "auditor"}, {}),
    ("GET", "/ui/ingest", {"admin"}, {}),
    ("POST", "/ui/ingest", {"admin"}, {"data": {}}),
    ("POST", "/ui/cases/{case}/close", {"investigator"}, {"data": {"reason": " "}}),
    ("GET", "/ui/cases/{case}/report.pdf", VIEWERS, {}),
    ("GET", "/ui/people", LOOKERS, {}),
    ("GET", "/ui/people/clusters/{face}", LOOKERS, {}),
    ("GET", "/ui/people/label?label=obama", LOOKERS, {}),
    ("POST", "/ui/people/merge", CHANGERS, {"data": {"purpose": "p"}}),
    ("POST", "/ui/people/cluster", {"admin"}, {"data": {"purpose": " "}}),
    ("POST", "/ui/people/clusters/{face}/rename", CHANGERS, {"data": {"purpose": "p"}}),
    ("POST", "/ui/people/clusters/{face}/merge", CHANGERS, {"data": {"purpose": "p"}}),
    ("POST", "/ui/people/clusters/{face}/split", CHANGERS, {"data": {"purpose": "p"}}),
    ("POST", "/ui/people/clusters/{face}/hide", CHANGERS, {"data": {"purpose": "p"}}),
    ("POST", "/ui/people/clusters/{face}/erase", {"admin"}, {"data": {"purpose": "p"}}),
    ("POST", "/ui/people/label/erase", {"admin"}, {"data": {"purpose": "p"}}),
    ("GET", "/ui/review", VIEWERS, {}),
    ("POST", "/ui/review/searches/{search}/decisions", VIEWERS, {"data": {"face_id": "1", "decision": "x"}}),
    ("POST", "/ui/review/searches/{search}/reject-rest", VIEWERS, {"data": {"face_ids": ""}}),
]


def _concrete(ui: Ui, path: str) -> str:
    return path.format(
        case=ui.case_id, search=ui.search_id, face=ui.face_id, user="nobody", key=999, receipt="er_x", token="A" * 22
    )


@pytest.mark.parametrize(("method", "path", "allowed", "kwargs"), ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES])
def test_ui_roles_route_by_route(ui: Ui, method: str, path: str, allowed: set[str], kwargs: dict[str, Any]) -> None:
    url = _concrete(ui, path)
    anonymous = ui.anonymous.request(method, url, **kwargs)
    assert anonymous.status_code == 303, anonymous.text
    assert anonymous.headers["location"].startswith("/ui/login?next=")
    for role in ROLES:
        request = dict(kwargs)
        if method == "POST":
            request["data"] = {**kwargs.get("data", {}), "csrf_token": ui.csrf(role)}
        response = ui.clients[role].request(method, url, **request)
        if role in allowed:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert "Not allowed" in response.text


def test_the_table_covers_every_ui_route(ui: Ui) -> None:
    served = {
        (method, "/ui" + re.sub(r"\{[^}]+\}", "{}", route.path))
        for route in [
            *ui_router.routes,
            *admin_router.routes,
            *compare_router.routes,
            *ui_jobs_router.routes,
            *people_router.routes,
            *members_router.routes,
            *review_router.routes,
            *searches_router.routes,
            *audit_router.routes,
        ]
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    tabled = {
        (m, re.sub(r"\{[^}]+\}|/0$", lambda x: "{}" if x.group(0) != "/0" else "/{}", p.split("?")[0]))
        for m, p, *_ in ROUTES
    }
    assert served - {("GET", "/ui/login"), ("POST", "/ui/login"), ("POST", "/ui/logout")} == tabled
    openapi = ui.clients["admin"].get("/openapi.json").json()["paths"]
    assert not [path for path in openapi if path.startswith("/ui")]


def test_sign_in_needs_the_right_password_and_a_csrf_token(ui: Ui) -> None:
    client = TestClient(ui.clients["admin"].app, raise_server_exceptions=False, follow_redirects=False)
    wrong = sign_in(client, "reviewer", "not the password")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    no_token = client.post("/ui/login", data={"username": "reviewer", "password": PASSWORD})
    assert no_token.status_code == 403
    good = sign_in(client, "reviewer")
    assert good.status_code == 303 and good.headers["location"] == "/ui/cases"
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/ui" in cookie
    assert client.get("/ui/cases").status_code == 200
    signed_out = client.post("/ui/logout", data={"csrf_token": "forged"})
    assert signed_out.status_code == 403
    token = _CSRF.search(client.get("/ui/cases").text)
    assert token
    assert client.post("/ui/logout", data={"csrf_token": token.group(1)}).status_code == 303
    assert client.get("/ui/cases").status_code == 303


def test_a_forged_cookie_or_an_outside_next_is_refused(ui: Ui) -> None:
    client = TestClient(ui.clients["admin"].app, raise_server_exceptions=False, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, "eyJ1IjoiYWRtaW4ifQ.forged", path="/ui")
    assert client.get("/ui/audit").status_code == 303
    client.cookies.clear()
    page = client.get("/ui/login")
    token = _CSRF.search(page.text)
    assert token
    response = client.post(
        "/ui/login",
        data={"username": "auditor", "password": PASSWORD, "csrf_token": token.group(1), "next": "//evil.example/"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/ui/"


def test_forms_without_the_session_token_change_nothing(ui: Ui) -> None:
    before = len(ui.engine.cases.cases())
    response = ui.clients["investigator"].post(
        "/ui/cases", data={"title": "t", "purpose": "p", "legal_basis": "l", "csrf_token": "stolen"}
    )
    assert response.status_code == 403 and "Form expired" in response.text
    assert len(ui.engine.cases.cases()) == before


def test_a_case_needs_purpose_and_legal_basis(ui: Ui) -> None:
    response = ui.clients["investigator"].post(
        "/ui/cases", data={"title": "t", "purpose": "p", "legal_basis": " ", "csrf_token": ui.csrf("investigator")}
    )
    assert response.status_code == 422 and "legal basis is required" in response.text


def test_the_search_page_shows_candidates_with_verdicts_and_provenance(ui: Ui) -> None:
    page = ui.clients["reviewer"].get(f"/ui/searches/{ui.search_id}")
    assert page.status_code == 200
    first = page.text.index('data-rank="1"')
    assert "obama" in page.text[first : first + 2000]
    assert "strangers" in page.text or "stranger" in page.text
    assert "https://example.org/obama" in page.text
    assert f"/ui/faces/{ui.face_id}/thumbnail?search_id={ui.search_id}" in page.text
    assert "Confirm" in page.text
    auditor = ui.clients["auditor"].get(f"/ui/searches/{ui.search_id}")
    assert auditor.status_code == 200 and "/thumbnail" not in auditor.text and "Confirm" not in auditor.text
    thumbnail = ui.clients["reviewer"].get(f"/ui/faces/{ui.face_id}/thumbnail?search_id={ui.search_id}")
    assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"
    probe = ui.clients["reviewer"].get(f"/ui/searches/{ui.search_id}/probe-faces/0")
    assert probe.status_code == 200 and probe.content[:2] == b"\xff\xd8"
    actions = [(e.actor, e.action, e.target) for e in ui.engine.audit.entries(0)]
    assert ("investigator", "search", f"search:{ui.search_id}") in actions
    assert ("reviewer", "view_face", f"face:{ui.face_id}") in actions
    assert ("reviewer", "view_thumbnail", f"face:{ui.face_id}") in actions
    assert ("reviewer", "view_probe", f"search:{ui.search_id}") in actions


_CARD = re.compile(r'<article class="card (\w+)" id="face-(\d+)"')
_BADGE = re.compile(r'<div class="strength (\w+)">([^<]+)</div>')


def test_badges_read_the_stored_evidence_fields_not_the_sentence(ui: Ui) -> None:
    record = ui.engine.cases.search(ui.search_id)
    page = ui.clients["reviewer"].get(f"/ui/searches/{ui.search_id}").text
    hits = sorted(record.hits, key=lambda h: h.rank)
    assert _CARD.findall(page) == [(h.evidence.strength.value, str(h.face_id)) for h in hits]
    assert _BADGE.findall(page) == [(h.evidence.strength.value, headline(h.evidence.strength)) for h in hits]
    assert hits[0].evidence.strength is Strength.STRONG
    # A stored hit whose fields say moderate, with both faces flagged: its badge and flags follow the fields.
    face = ui.engine.catalog.faces_by_id([ui.face_id])[ui.face_id]
    evidence = Evidence(0.5, Strength.MODERATE, 2.5e-5, 9, 2.25e-4, 0.25, weak_probe=True, weak_candidate=True)
    result = ProbeResult("probe.jpg", 0, None, None, (SearchHit(1, 0.5, face, evidence),))
    investigator = ui.engine.users.user("investigator")
    case = ui.engine.cases.open_case(investigator, "Badges", "check the badges", "test")
    ui.engine.cases.add_member(ui.engine.users.user("admin"), case.case_id, "reviewer")
    stored = ui.engine.cases.record_search(
        investigator, case, "p", "c" * 64, "probe.jpg", face.model_id, None, [result]
    )
    page = ui.clients["reviewer"].get(f"/ui/searches/{stored.search_id}").text
    assert _CARD.findall(page) == [("moderate", str(ui.face_id))]
    assert _BADGE.findall(page) == [("moderate", "moderate lead")]
    assert ">weak probe</span>" in page and ">weak candidate" in page
    assert describe(evidence) in page


def test_four_eyes_and_the_report(ui: Ui) -> None:
    own = ui.clients["investigator"].post(
        f"/ui/searches/{ui.search_id}/reviews",
        data={"face_id": str(ui.face_id), "decision": "confirmed", "csrf_token": ui.csrf("investigator")},
    )
    assert own.status_code == 403 and "independent review" in own.text
    other = ui.clients["investigator2"].post(
        f"/ui/searches/{ui.search_id}/reviews",
        data={
            "face_id": str(ui.face_id),
            "decision": "confirmed",
            "note": "same ear",
            "csrf_token": ui.csrf("investigator2"),
        },
    )
    assert other.status_code == 303, other.text
    report = ui.clients["reviewer"].get(f"/ui/cases/{ui.case_id}/report")
    assert report.status_code == 200
    assert "confirmed</span> by investigator2" in report.text and "What the scores mean" in report.text
    assert "data:image/jpeg;base64," in report.text
    download = ui.clients["reviewer"].get(f"/ui/cases/{ui.case_id}/report?download=1")
    assert "attachment" in download.headers["content-disposition"]
    exports = [e for e in ui.engine.audit.entries(0) if e.action == "export"]
    assert exports and exports[-1].target == f"case:{ui.case_id}" and ui.face_id in exports[-1].details["face_ids"]  # type: ignore[operator]


def test_the_audit_page_verifies_the_chain(ui: Ui) -> None:
    page = ui.clients["auditor"].get("/ui/audit")
    assert page.status_code == 200 and "Chain verified" in page.text
    assert f"search:{ui.search_id}" in page.text


def _key_authenticates(ui: Ui, key: str) -> bool:
    try:
        ui.engine.users.authenticate_key(key)
    except AuthenticationError:
        return False
    return True


def test_an_admin_adds_a_user_sees_the_key_once_and_revokes_it(ui: Ui) -> None:
    admin = ui.clients["admin"]
    added = admin.post(
        "/ui/admin/users",
        data={"name": "newbie", "role": "reviewer", "password": PASSWORD, "csrf_token": ui.csrf("admin")},
    )
    assert added.status_code == 201, added.text
    shown = re.search(r'id="issued-key-value">(ft_[^<]+)<', added.text)
    assert shown and _key_authenticates(ui, shown.group(1))
    listing = admin.get("/ui/admin/users")
    assert shown.group(1) not in listing.text and shown.group(1)[:10] in listing.text  # prefix only, afterwards
    assert sign_in(TestClient(admin.app, follow_redirects=False), "newbie").status_code == 303
    key_id = ui.engine.users.api_keys("newbie")[0].key_id
    revoked = admin.post(f"/ui/admin/users/newbie/keys/{key_id}/revoke", data={"csrf_token": ui.csrf("admin")})
    assert revoked.status_code == 303 and revoked.headers["location"] == "/ui/admin/users"
    assert not _key_authenticates(ui, shown.group(1))
    short = admin.post("/ui/admin/users/newbie/password", data={"password": "short", "csrf_token": ui.csrf("admin")})
    assert short.status_code == 422 and "at least 12 characters" in short.text
    auditor = ui.clients["auditor"].get("/ui/admin/users")
    assert auditor.status_code == 200 and "newbie" in auditor.text and "Add a user" not in auditor.text
    actions = [(e.actor, e.action, e.target) for e in ui.engine.audit.entries(0)]
    assert ("admin", "add_user", "user:newbie") in actions and ("admin", "revoke_api_key", "user:newbie") in actions


def test_an_investigator_compares_two_uploaded_photos(ui: Ui, small_gallery: SmallGallery) -> None:
    investigator = ui.clients["investigator"]
    form = investigator.get("/ui/compare")
    assert form.status_code == 200 and f'value="{ui.case_id}"' in form.text
    since = len(ui.engine.audit.entries(0))
    same = small_gallery.paths_of("obama")[0]
    page = investigator.post(
        "/ui/compare",
        files={
            "a": (small_gallery.probe.name, small_gallery.probe.read_bytes(), "image/jpeg"),
            "b": (same.name, same.read_bytes(), "image/jpeg"),
        },
        data={
            "case_id": str(ui.case_id),
            "purpose": "same man as the doorbell?",
            "csrf_token": ui.csrf("investigator"),
        },
    )
    assert page.status_code == 200, page.text
    similarity = re.search(r"Similarity (-?[0-9.]+)", page.text)
    assert similarity and float(similarity.group(1)) > 0.5  # two photos of Obama
    assert page.text.count("data:image/jpeg;base64,") == 2
    assert "strong lead" in page.text
    compares = [e for e in ui.engine.audit.entries(since) if e.action == "compare"]
    assert len(compares) == 1 and compares[0].target == f"case:{ui.case_id}"
    assert compares[0].details["purpose"] == "same man as the doorbell?"
    no_case = investigator.post("/ui/compare", data={"purpose": "p", "csrf_token": ui.csrf("investigator")})
    assert no_case.status_code == 422 and "choose the case" in no_case.text


def test_the_auditor_sees_repeated_probes(ui: Ui) -> None:
    page = ui.clients["auditor"].get("/ui/audit/repeated-probes")
    assert page.status_code == 200 and 'id="repeated-probes"' in page.text
    assert len(ui.engine.cases.repeated_probes()) == page.text.count("<tr><td><a")


_PREVIEW_ID = re.compile(r'name="preview_id" value="([^"]+)"')
_LISTED = re.compile(r'name="face_id" value="(\d+)"')


def _previewed(page: Any) -> tuple[str, list[int]]:
    """A preview page's id and the face ids it lists (each ticked)."""
    assert page.status_code == 200, page.text
    assert "Nothing has been erased yet" in page.text
    preview_id = _PREVIEW_ID.search(page.text)
    assert preview_id, page.text
    listed = [int(face_id) for face_id in _LISTED.findall(page.text)]
    assert page.text.count(" checked>") == len(listed)
    return preview_id.group(1), listed


def test_an_admin_previews_a_photo_request_and_confirms_the_ticked_faces(
    ui: Ui, small_gallery: SmallGallery, fr_examples: Path
) -> None:
    """Erases faces from the shared gallery: after every test but the last. The confirmation erases exactly the
    faces ticked on the preview the admin saw, even when the gallery has changed since."""
    admin, engine = ui.clients["admin"], ui.engine
    page = admin.post(
        "/ui/admin/erasures/photo",
        files={"photo": ("request.jpg", small_gallery.probe.read_bytes(), "image/jpeg")},
        data={"reason": "request 9", "csrf_token": ui.csrf("admin")},
    )
    preview_id, listed = _previewed(page)
    obama = {i for i, r in engine.catalog.faces_by_id(listed).items() if r.label == "obama"}
    assert len(listed) >= 2 and set(listed) == obama
    assert 'id="requester-face">face 0 of 1' in page.text and "request 9" in page.text
    assert engine.catalog.faces_by_id(listed).keys() == set(listed), "a preview erases nothing"
    # Meanwhile another photo of him is ingested; the admin unticks one listed face, then confirms.
    added = engine.ingest.run([fr_examples / "examples/obama-480p.jpg"])
    assert added.faces_added == 1
    new_face = max(engine.catalog.face_ids(engine.model_id).tolist())
    kept, ticked = listed[0], listed[1:]
    confirmed = admin.post(
        "/ui/admin/erasures/confirm",
        data={"preview_id": preview_id, "face_id": [str(i) for i in ticked], "reason": "request 9",
              "csrf_token": ui.csrf("admin")},
    )  # fmt: skip
    assert confirmed.status_code == 303, confirmed.text
    receipt = engine.erasure.receipt(confirmed.headers["location"].rsplit("/", 1)[1])
    assert receipt.mode == "probe" and sorted(receipt.face_ids) == sorted(ticked)
    assert receipt.suppressed_embeddings == len(ticked) + 1
    assert set(engine.catalog.faces_by_id([kept, new_face])) == {kept, new_face}
    entry = engine.audit.entries(receipt.audit_seq - 1, 1)[0]
    assert entry.details["listed_not_erased"] == [kept]
    again = admin.post(
        "/ui/admin/erasures/confirm",
        data={"preview_id": preview_id, "face_id": [str(kept)], "reason": "again", "csrf_token": ui.csrf("admin")},
    )
    assert again.status_code == 409 and "preview the request again" in again.text


def test_an_admin_erases_a_person_and_reads_the_receipt(ui: Ui) -> None:
    """Last in this module: it removes faces from the shared gallery."""
    admin = ui.clients["admin"]
    missing = admin.post(
        "/ui/admin/erasures/person",
        data={"label": "nobody at all", "reason": "request 7", "csrf_token": ui.csrf("admin")},
    )
    assert missing.status_code == 422 and "no face is labelled" in missing.text
    page = admin.post(
        "/ui/admin/erasures/person",
        data={"label": "rose_leslie", "reason": "request 8", "csrf_token": ui.csrf("admin")},
    )
    preview_id, listed = _previewed(page)
    assert listed == ui.engine.catalog.face_ids_labelled("rose_leslie")
    # The preview, then one view of the listed faces' thumbnails shown on it.
    assert [e.action for e in ui.engine.audit.entries()[-2:]] == ["erase_preview", "view_thumbnail"]
    erased = admin.post(
        "/ui/admin/erasures/confirm",
        data={"preview_id": preview_id, "face_id": [str(i) for i in listed], "reason": "request 8",
              "csrf_token": ui.csrf("admin")},
    )  # fmt: skip
    assert erased.status_code == 303, erased.text
    receipt_id = erased.headers["location"].rsplit("/", 1)[1]
    receipt = ui.engine.erasure.receipt(receipt_id)
    assert receipt.mode == "person" and list(receipt.face_ids) == listed
    page = ui.clients["auditor"].get(f"/ui/admin/erasures/{receipt_id}")
    assert page.status_code == 200 and "request 8" in page.text and str(receipt.face_ids[0]) in page.text
    listing = admin.get("/ui/admin/erasures")
    assert receipt_id in listing.text and 'id="erase-person"' in listing.text
    assert 'id="erase-person"' not in ui.clients["auditor"].get("/ui/admin/erasures").text
