"""Access by case: a case's owner and the members an admin adds work in it; other investigators and reviewers get
404 for the case and everything in it (as for a case that does not exist), auditors read it, admins manage it.
Four eyes is set by policy, not by the searcher. Looking at the gallery names a case and a purpose and is audited
with them. On a real engine over a few real photos, through the API and the web UI."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from facetrace.core.errors import PermissionDeniedError
from facetrace.core.types import User
from facetrace.core.vocabulary import IndependentReview, Role
from facetrace.engine import Engine, open_engine
from facetrace.governance.cases import CaseService
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.ui.probes import ProbeStore

pytestmark = pytest.mark.slow

PASSWORD = "a-long-password-1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# The identities of the table, in its column order: name -> role.
PEOPLE = {
    "owner": Role.INVESTIGATOR,
    "member": Role.INVESTIGATOR,
    "member_reviewer": Role.REVIEWER,
    "other_investigator": Role.INVESTIGATOR,
    "other_reviewer": Role.REVIEWER,
    "auditor": Role.AUDITOR,
    "admin": Role.ADMIN,
}
GALLERY = [
    ("examples/knn_examples/train/obama/obama.jpg", "obama"),
    ("examples/knn_examples/train/obama/obama2.jpg", "obama"),
    ("examples/knn_examples/train/biden/biden.jpg", "biden"),
]
PROBE = "examples/knn_examples/test/obama1.jpg"


@dataclass
class World:
    engine: Engine
    api: TestClient
    ui: dict[str, TestClient]  # signed in, by name
    keys: dict[str, str]
    probe: Path
    case_id: int
    search_id: int  # the owner's search in the case, with a kept probe crop
    face_id: int  # its top candidate

    def headers(self, name: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[name]}

    def csrf(self, name: str) -> str:
        page = self.ui[name].get("/ui/cases" if PEOPLE[name] != Role.ADMIN else "/ui/audit")
        match = _CSRF.search(page.text)
        assert match, page.text
        return match.group(1)


def _sign_in(client: TestClient, name: str) -> None:
    token = _CSRF.search(client.get("/ui/login").text)
    assert token
    answer = client.post(
        "/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1), "next": "/ui/cases"}
    )
    assert answer.status_code == 303, answer.text


@pytest.fixture(scope="module")
def world(fr_examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("case_access")
    manifest = root / "gallery.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label"])
        for path, label in GALLERY:
            writer.writerow([fr_examples / path, label])
    engine = open_engine(root / "data", workers=1, api_requests_per_minute=0, search_requests_per_minute=0)
    assert engine.ingest.run(manifests=[manifest]).errors == 0
    hasher = Argon2Hasher()
    keys = {}
    for name, role in PEOPLE.items():
        keys[name] = engine.users.add_user(name, role, "cli:test", password=PASSWORD, hasher=hasher).api_key
    owner, admin = engine.users.user("owner"), engine.users.user("admin")
    case = engine.cases.open_case(owner, "Burglary 17", "identify the suspect", "warrant 2026/17")
    for member in ("member", "member_reviewer"):
        engine.cases.add_member(admin, case.case_id, member)
    probe = fr_examples / PROBE
    data = probe.read_bytes()
    record, results = engine.search.in_case(owner, case.case_id, "who is on the doorbell camera", data, probe.name)
    ProbeStore(engine.settings.data, engine.settings.max_image_pixels).save(record.search_id, data, probe.name, results)
    app = create_app(engine)
    ui = {}
    for name in PEOPLE:
        ui[name] = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        _sign_in(ui[name], name)
    with TestClient(app, raise_server_exceptions=False) as api:
        yield World(engine, api, ui, keys, probe, case.case_id, record.search_id, record.hits[0].face_id)
    for client in ui.values():
        client.close()
    engine.close()


# Expected status per identity, in PEOPLE's order: owner, member, member_reviewer, other_investigator,
# other_reviewer, auditor, admin. 404 is the answer for a case (or anything in it) the caller may not reach; 403 is
# a route the caller's role never allows, whatever the case.
READ = (200, 200, 200, 404, 404, 200, 403)
VIEW = (200, 200, 200, 404, 404, 403, 403)
API_ROUTES: list[tuple[str, str, dict[str, Any], tuple[int, ...]]] = [
    ("GET", "/api/v1/cases/{case}", {}, READ),
    ("GET", "/api/v1/searches/{search}", {}, READ),
    # The owner ran the search: four eyes refuses their review (403); the members' reviews are stored.
    ("POST", "/api/v1/searches/{search}/reviews", {"json": {"face_id": "{face}", "decision": "rejected"}},
     (403, 201, 201, 404, 404, 403, 403)),
    ("GET", "/api/v1/cases/{case}/report.pdf", {}, VIEW),
    ("POST", "/api/v1/cases/{case}/searches", {"probe": True, "data": {"purpose": "again"}},
     (201, 201, 403, 404, 403, 403, 403)),
    ("POST", "/api/v1/compare", {"compare": True, "data": {"case_id": "{case}", "purpose": "same man?"}},
     (200, 200, 403, 404, 403, 403, 403)),
    ("GET", "/api/v1/faces/{face}?case_id={case}&purpose=lead", {}, VIEW),
    ("GET", "/api/v1/faces/{face}/thumbnail?case_id={case}&purpose=lead", {}, VIEW),
    ("GET", "/api/v1/people?case_id={case}&purpose=lead", {}, (200, 200, 200, 404, 404, 403, 200)),
    ("GET", "/api/v1/people/obama?case_id={case}&purpose=lead", {}, VIEW),
    # A blank reason: 422 once the caller may close the case, so nothing is closed here (test below closes).
    ("POST", "/api/v1/cases/{case}/close", {"json": {"reason": " "}}, (422, 422, 403, 404, 403, 403, 422)),
]  # fmt: skip
UI_ROUTES: list[tuple[str, str, dict[str, Any], tuple[int, ...]]] = [
    ("GET", "/ui/cases/{case}", {}, READ),
    ("GET", "/ui/searches/{search}", {}, READ),
    ("GET", "/ui/searches/{search}/compare/{face}", {}, VIEW),
    ("GET", "/ui/searches/{search}/probe-faces/0", {}, VIEW),
    ("GET", "/ui/faces/{face}/thumbnail?search_id={search}", {}, VIEW),
    ("GET", "/ui/faces/{face}/thumbnail?case_id={case}&purpose=lead", {}, VIEW),
    ("GET", "/ui/cases/{case}/report", {}, VIEW),
    ("GET", "/ui/cases/{case}/report.pdf", {}, VIEW),
    ("POST", "/ui/searches/{search}/reviews", {"data": {"face_id": "{face}", "decision": "rejected"}},
     (403, 303, 303, 404, 404, 403, 403)),
    ("POST", "/ui/cases/{case}/searches", {"probe": True, "data": {"purpose": "again"}},
     (303, 303, 403, 404, 403, 403, 403)),
    ("POST", "/ui/cases/{case}/close", {"data": {"reason": " "}}, (422, 422, 403, 404, 403, 403, 403)),
    # The review queue's forms: the same rule as the search page's.
    ("POST", "/ui/review/searches/{search}/decisions", {"data": {"face_id": "{face}", "decision": "rejected"}},
     (403, 303, 303, 404, 404, 403, 403)),
    ("POST", "/ui/review/searches/{search}/reject-rest", {"data": {"face_ids": "{face}"}},
     (403, 303, 303, 404, 404, 403, 403)),
]  # fmt: skip


def _fill(world: World, value: Any) -> Any:
    if isinstance(value, str):
        return value.format(case=world.case_id, search=world.search_id, face=world.face_id)
    if isinstance(value, dict):
        return {key: _fill(world, item) for key, item in value.items()}
    return value


def _request(world: World, client: TestClient, method: str, path: str, spec: dict[str, Any], **extra: Any) -> Any:
    kwargs: dict[str, Any] = {key: _fill(world, value) for key, value in spec.items() if key in ("json", "data")}
    if "json" in kwargs and "face_id" in kwargs["json"]:
        kwargs["json"]["face_id"] = int(kwargs["json"]["face_id"])
    photo = (world.probe.name, world.probe.read_bytes(), "image/jpeg")
    if spec.get("probe"):
        kwargs["files"] = {"probe": photo}
    if spec.get("compare"):
        kwargs["files"] = {"a": photo, "b": photo}
    if "data" in extra:
        kwargs["data"] = {**kwargs.get("data", {}), **extra.pop("data")}
    return client.request(method, _fill(world, path), **kwargs, **extra)


@pytest.mark.parametrize(
    ("method", "path", "spec", "expected"), API_ROUTES, ids=[f"{m} {p}" for m, p, *_ in API_ROUTES]
)
def test_api_case_routes_by_identity(
    world: World, method: str, path: str, spec: dict[str, Any], expected: tuple[int, ...]
) -> None:
    got = tuple(
        _request(world, world.api, method, path, spec, headers=world.headers(name)).status_code for name in PEOPLE
    )
    assert got == expected, dict(zip(PEOPLE, got, strict=True))


@pytest.mark.parametrize(("method", "path", "spec", "expected"), UI_ROUTES, ids=[f"{m} {p}" for m, p, *_ in UI_ROUTES])
def test_ui_case_routes_by_identity(
    world: World, method: str, path: str, spec: dict[str, Any], expected: tuple[int, ...]
) -> None:
    got = []
    for name in PEOPLE:
        extra = {"data": {"csrf_token": world.csrf(name)}} if method == "POST" else {}
        got.append(_request(world, world.ui[name], method, path, spec, **extra).status_code)
    assert tuple(got) == expected, dict(zip(PEOPLE, got, strict=True))


def test_a_case_out_of_reach_answers_as_one_that_does_not_exist(world: World) -> None:
    """The 404 says no more than for a missing id: the same code and wording, and the case is not listed."""
    outsider = world.headers("other_investigator")
    hidden = world.api.get(f"/api/v1/cases/{world.case_id}", headers=outsider).json()
    assert hidden == {"error": {"code": "not_found", "message": f"no case {world.case_id}"}}
    assert world.api.get("/api/v1/cases/987654", headers=outsider).json()["error"]["message"] == "no case 987654"
    search = world.api.get(f"/api/v1/searches/{world.search_id}", headers=outsider).json()
    assert search["error"]["message"] == f"no search {world.search_id}"
    for name, listed in [("other_investigator", False), ("other_reviewer", False), ("member_reviewer", True),
                         ("owner", True), ("auditor", True), ("admin", True)]:  # fmt: skip
        ids = [case["case_id"] for case in world.api.get("/api/v1/cases", headers=world.headers(name)).json()]
        assert (world.case_id in ids) is listed, name
    page = world.ui["other_reviewer"].get("/ui/cases")
    assert page.status_code == 200 and f"/ui/cases/{world.case_id}" not in page.text


def test_admins_manage_members_and_a_removed_member_loses_the_case(world: World) -> None:
    owner = world.engine.users.user("owner")
    case = world.engine.cases.open_case(owner, "Fraud 9", "find the forger", "warrant 9")
    url = f"/api/v1/cases/{case.case_id}"
    ivan = world.headers("other_investigator")
    assert world.api.get(url, headers=ivan).status_code == 404
    added = world.api.post(f"{url}/members", json={"user": "other_investigator"}, headers=world.headers("admin"))
    assert added.status_code == 201 and added.json()["added_by"] == "admin"
    assert world.api.get(url, headers=ivan).json()["members"][0]["user_name"] == "other_investigator"
    again = world.api.post(f"{url}/members", json={"user": "other_investigator"}, headers=world.headers("admin"))
    assert again.status_code == 409
    auditor = world.api.post(f"{url}/members", json={"user": "auditor"}, headers=world.headers("admin"))
    assert auditor.status_code == 422 and "investigators or reviewers" in auditor.json()["error"]["message"]
    nobody = world.api.post(f"{url}/members", json={"user": "nobody"}, headers=world.headers("admin"))
    assert nobody.status_code == 404
    by_owner = world.api.post(f"{url}/members", json={"user": "other_reviewer"}, headers=world.headers("owner"))
    assert by_owner.status_code == 403  # the owner does not pick who else sees the case: an admin does
    removed = world.api.post(f"{url}/members/other_investigator/remove", headers=world.headers("admin"))
    assert removed.status_code == 204
    assert world.api.get(url, headers=ivan).status_code == 404
    actions = [(e.actor, e.action, e.target, e.details.get("user")) for e in world.engine.audit.entries(0)]
    target = f"case:{case.case_id}"
    assert ("admin", "add_case_member", target, "other_investigator") in actions
    assert ("admin", "remove_case_member", target, "other_investigator") in actions


def test_another_investigator_cannot_close_the_case_its_owner_can(world: World) -> None:
    owner = world.engine.users.user("owner")
    case = world.engine.cases.open_case(owner, "Theft 3", "find the thief", "warrant 3")
    url = f"/api/v1/cases/{case.case_id}/close"
    refused = world.api.post(url, json={"reason": "mine now"}, headers=world.headers("other_investigator"))
    assert refused.status_code == 404
    assert world.engine.cases.case(case.case_id).status == "open"
    closed = world.api.post(url, json={"reason": "charged"}, headers=world.headers("owner"))
    assert closed.status_code == 200 and closed.json()["status"] == "closed"


def test_the_searcher_cannot_switch_four_eyes_off(world: World) -> None:
    """It used to: requires_independent_review false at opening, then self-confirmation gave 201."""
    body = {"title": "t", "purpose": "p", "legal_basis": "l", "requires_independent_review": False}
    refused = world.api.post("/api/v1/cases", json=body, headers=world.headers("owner"))
    assert refused.status_code == 403
    assert "required by policy" in refused.json()["error"]["message"]
    # The web form without the box (it is not offered under the policy): the case gets four eyes all the same.
    form = {"title": "UI case", "purpose": "p", "legal_basis": "l", "csrf_token": world.csrf("owner")}
    opened = world.ui["owner"].post("/ui/cases", data=form)
    assert opened.status_code == 303
    case_id = int(opened.headers["location"].rsplit("/", 1)[1])
    assert world.engine.cases.case(case_id).requires_independent_review
    assert 'name="requires_independent_review"' not in world.ui["owner"].get("/ui/cases").text
    # A case stored without four eyes (before the policy) is held to it too: self-confirmation is refused.
    store = world.engine.catalog.governance_store()
    old = store.add_case("old", "p", "l", False, "owner")
    data = world.probe.read_bytes()
    owner = world.engine.users.user("owner")
    record, _ = world.engine.search.in_case(owner, old.case_id, "who?", data, world.probe.name)
    own = world.api.post(
        f"/api/v1/searches/{record.search_id}/reviews",
        json={"face_id": record.hits[0].face_id, "decision": "confirmed"},
        headers=world.headers("owner"),
    )
    assert own.status_code == 403 and "independent review" in own.json()["error"]["message"]
    shown = world.api.get(f"/api/v1/cases/{old.case_id}", headers=world.headers("owner")).json()
    assert shown["case"]["requires_independent_review"] is True  # what applies, not what was asked for


def test_an_optional_policy_leaves_the_choice_to_the_case(world: World) -> None:
    store = world.engine.catalog.governance_store()
    optional = CaseService(store, world.engine.audit, 1.0, IndependentReview.OPTIONAL)
    required = CaseService(store, world.engine.audit, 1.0)
    owner = world.engine.users.user("owner")
    relaxed = optional.open_case(owner, "t", "p", "l", requires_independent_review=False)
    assert not relaxed.requires_independent_review
    assert not optional.independent_review_required(relaxed) and required.independent_review_required(relaxed)
    with pytest.raises(PermissionDeniedError, match="required by policy"):
        required.open_case(owner, "t", "p", "l", requires_independent_review=False)
    someone = User(0, "x", Role.INVESTIGATOR, datetime.now(UTC))
    assert optional.open_case(someone, "t", "p", "l").requires_independent_review  # on unless asked otherwise


def test_browsing_the_gallery_needs_a_case_and_a_purpose_and_is_audited_with_them(world: World) -> None:
    reviewer = world.headers("member_reviewer")
    paths = [f"/api/v1/faces/{world.face_id}", f"/api/v1/faces/{world.face_id}/thumbnail", "/api/v1/people",
             "/api/v1/people/obama"]  # fmt: skip
    for path in paths:
        bare = world.api.get(path, headers=reviewer)
        assert bare.status_code == 422, (path, bare.text)
        assert "a case (case_id) and a purpose" in bare.json()["error"]["message"]
        no_purpose = world.api.get(path, params={"case_id": world.case_id}, headers=reviewer)
        assert no_purpose.status_code == 422
    assert world.ui["member_reviewer"].get(f"/ui/faces/{world.face_id}/thumbnail").status_code == 422
    since = world.engine.audit.length()
    within = {"case_id": world.case_id, "purpose": "check the lead's provenance"}
    for path in paths:
        assert world.api.get(path, params=within, headers=reviewer).status_code == 200, path
    looks = world.engine.audit.entries(since)
    assert [e.action for e in looks] == ["view_face", "view_thumbnail", "list_people", "view_person"]
    assert all(e.actor == "member_reviewer" for e in looks)
    assert all(e.details["case_id"] == world.case_id for e in looks)
    assert all(e.details["purpose"] == "check the lead's provenance" for e in looks)
    # A closed case allows no new look at the gallery, as it allows no new search.
    owner = world.engine.users.user("owner")
    closed = world.engine.cases.open_case(owner, "Done 1", "p", "l")
    world.engine.cases.close_case(owner, closed.case_id, "done")
    late = world.api.get(
        f"/api/v1/faces/{world.face_id}",
        params={"case_id": closed.case_id, "purpose": "p"},
        headers=world.headers("owner"),
    )
    assert late.status_code == 409
