"""The HTTP API on a real engine over a small real gallery: roles route by route, searches within cases,
reviews under the four-eyes rule, audited views, repeated probes, and the one error envelope."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import SmallGallery, assert_rate_as_stated
from facetrace.core.evidence import headline
from facetrace.core.types import QUALITY_CONDITIONS, Strength
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app

pytestmark = pytest.mark.slow

ROLES = ("admin", "investigator", "reviewer", "auditor")


@dataclass
class Service:
    engine: Engine
    client: TestClient
    keys: dict[str, str]  # user name -> API key; users are named after their role, plus "investigator2"
    gallery: SmallGallery

    def as_user(self, name: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[name]}


@pytest.fixture(scope="module")
def service(small_gallery: SmallGallery, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    # Back-to-back searches with one key would meet the rate limits, which test_server_accounts.py tests.
    engine = open_engine(
        tmp_path_factory.mktemp("server") / "data", workers=1, api_requests_per_minute=0, search_requests_per_minute=0
    )
    summary = engine.ingest.run(manifests=[small_gallery.manifest])
    assert summary.errors == 0 and summary.faces_added >= len(small_gallery.paths_of("obama"))
    keys = {"admin": engine.users.create_admin("admin", "cli:test").api_key}
    for name, role in [*((role, role) for role in ROLES[1:]), ("investigator2", "investigator")]:
        keys[name] = engine.users.add_user(name, role, "admin").api_key
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield Service(engine, client, keys, small_gallery)
    engine.close()


def _photo(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "image/jpeg")


# Every route, who may call it, and a request that is harmless when allowed.
ROUTES: list[tuple[str, str, set[str], dict[str, Any]]] = [
    ("GET", "/api/v1/me", set(ROLES), {}),
    ("GET", "/api/v1/users", {"admin", "auditor"}, {}),
    ("POST", "/api/v1/users", {"admin"}, {"json": {"name": "x", "role": "nope"}}),
    ("POST", "/api/v1/users/nobody/keys", {"admin"}, {}),
    ("POST", "/api/v1/users/nobody/deactivate", {"admin"}, {}),
    ("GET", "/api/v1/users/nobody/keys", {"admin", "auditor"}, {}),
    ("POST", "/api/v1/users/nobody/keys/999/revoke", {"admin"}, {}),
    ("POST", "/api/v1/cases", {"investigator"}, {"json": {"title": " ", "purpose": "p", "legal_basis": "l"}}),
    ("GET", "/api/v1/cases", {"investigator", "reviewer", "auditor", "admin"}, {}),
    ("GET", "/api/v1/cases/999/members", {"admin", "auditor"}, {}),
    ("POST", "/api/v1/cases/999/members", {"admin"}, {"json": {"user": "reviewer"}}),
    ("POST", "/api/v1/cases/999/members/nobody/remove", {"admin"}, {}),
    ("GET", "/api/v1/cases/999", {"investigator", "reviewer", "auditor"}, {}),
    ("POST", "/api/v1/cases/999/searches", {"investigator"}, {"data": {"purpose": "p"}}),
    ("GET", "/api/v1/searches/999", {"investigator", "reviewer", "auditor"}, {}),
    ("POST", "/api/v1/searches/999/reviews", {"reviewer", "investigator"}, {"json": {"face_id": 1, "decision": "x"}}),
    ("POST", "/api/v1/compare", {"investigator"}, {"data": {"case_id": "999", "purpose": "p"}}),
    ("GET", "/api/v1/faces/999999", {"investigator", "reviewer"}, {}),
    ("GET", "/api/v1/faces/999999/thumbnail", {"investigator", "reviewer"}, {}),
    ("GET", "/api/v1/audit", {"auditor", "admin"}, {}),
    ("GET", "/api/v1/audit/verify", {"auditor", "admin"}, {}),
    ("GET", "/api/v1/audit/head", {"auditor", "admin"}, {}),
    ("GET", "/api/v1/audit/transparency", {"auditor", "admin"}, {"params": {"from": "2026-01-01", "to": "2026-01-31"}}),
    ("GET", "/api/v1/audit/repeated-probes", {"auditor"}, {}),
    ("POST", "/api/v1/erasures/faces", {"admin"}, {"json": {"face_ids": [999999], "reason": "r"}}),
    ("POST", "/api/v1/erasures/person", {"admin"}, {"json": {"label": "nobody at all", "reason": "r"}}),
    ("POST", "/api/v1/erasures/photo", {"admin"}, {"data": {"reason": "r"}}),
    ("POST", "/api/v1/erasures/photo/preview", {"admin"}, {"data": {"face_index": "0"}}),
    ("POST", "/api/v1/erasures/person/preview", {"admin"}, {"json": {"label": "nobody at all"}}),
    ("GET", "/api/v1/erasures", {"admin", "auditor"}, {}),
    ("GET", "/api/v1/erasures/er_unknown", {"admin", "auditor"}, {}),
    ("POST", "/api/v1/cases/999/close", {"investigator", "admin"}, {"json": {"reason": "r"}}),
    ("GET", "/api/v1/cases/999/report.pdf", {"investigator", "reviewer"}, {}),
    ("POST", "/api/v1/ingest/jobs", {"admin"}, {"data": {"label": "no source: 422"}}),
    ("GET", "/api/v1/ingest/jobs", {"admin"}, {}),
    ("GET", "/api/v1/ingest/jobs/nobody", {"admin"}, {}),
    ("GET", "/api/v1/people", {"investigator", "reviewer", "admin"}, {}),
    ("GET", "/api/v1/people/nobody", {"investigator", "reviewer"}, {}),
    ("POST", "/api/v1/retention/purge", {"admin"}, {"json": {"dry_run": True}}),
]


@pytest.mark.parametrize(
    ("method", "path", "allowed", "request_kwargs"), ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES]
)
def test_roles_route_by_route(
    service: Service, method: str, path: str, allowed: set[str], request_kwargs: dict[str, Any]
) -> None:
    anonymous = service.client.request(method, path, **request_kwargs)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    bad_key = service.client.request(method, path, headers={"X-API-Key": "ft_not_a_key"}, **request_kwargs)
    assert bad_key.status_code == 401
    for role in ROLES:
        response = service.client.request(method, path, headers=service.as_user(role), **request_kwargs)
        if role in allowed:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.json()["error"]["code"] == "forbidden"


def _shape(path: str) -> str:
    """A path with its parameters blanked, so a concrete path of the table matches its OpenAPI template."""
    return re.sub(r"(?<=/)(\{[^}]+\}|\d+|nobody|er_unknown)(?=/|$)", "{}", path)


def test_every_api_route_is_in_the_role_table(service: Service) -> None:
    documented = {
        (method.upper(), _shape(path))
        for path, operations in service.client.get("/openapi.json").json()["paths"].items()
        for method in operations
    }
    tabled = {(method, _shape(path)) for method, path, *_ in ROUTES}
    assert documented - {("GET", "/api/v1/health")} == tabled


def test_health_docs_and_the_error_envelope(service: Service) -> None:
    health = service.client.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert service.client.get("/docs").status_code == 200
    missing = service.client.get("/api/v1/nothing-here", headers=service.as_user("admin"))
    assert missing.status_code == 404 and missing.json() == {"error": {"code": "not_found", "message": "Not Found"}}


def _open_case(service: Service, user: str = "investigator", **fields: Any) -> int:
    """A case opened by user, with the other investigators and the reviewer added as members by the admin (access
    by case: tests/security/test_case_access.py tests who else reaches it)."""
    body = {"title": "Burglary 17", "purpose": "identify the suspect", "legal_basis": "warrant 2026/17", **fields}
    response = service.client.post("/api/v1/cases", json=body, headers=service.as_user(user))
    assert response.status_code == 201, response.text
    case_id = int(response.json()["case_id"])
    for member in {"investigator", "investigator2", "reviewer"} - {user}:
        added = service.client.post(
            f"/api/v1/cases/{case_id}/members", json={"user": member}, headers=service.as_user("admin")
        )
        assert added.status_code == 201, added.text
    return case_id


def _search(service: Service, case_id: int, probe: Path, user: str = "investigator", **form: Any) -> dict[str, Any]:
    response = service.client.post(
        f"/api/v1/cases/{case_id}/searches",
        files={"probe": _photo(probe)},
        data={"purpose": "who is on the doorbell camera", **form},
        headers=service.as_user(user),
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_search_in_a_case_returns_its_evidence_as_data_and_stores_it(service: Service) -> None:
    """Typed evidence at full precision in the search's response, and the same evidence read back from the stored
    search: strength as its value, flags, tables, and the sentence rendered from them."""
    case_id = _open_case(service)
    body = _search(service, case_id, service.gallery.probe, top_k="5")
    hits = body["results"][0]["hits"]
    top = hits[0]["evidence"]
    assert top["strength"] == "strong" and top["verdict"].startswith("strong lead:")
    assert top["false_match_rate"] < 5e-7  # rounded to 6 decimals this was 0.0
    assert_rate_as_stated(top)
    for hit in hits:
        evidence = hit["evidence"]
        assert evidence["strength"] in {strength.value for strength in Strength}
        assert evidence["verdict"].split(":", 1)[0] == headline(Strength(evidence["strength"]))
        assert evidence["pair_condition"] == QUALITY_CONDITIONS[evidence["weak_probe"] + evidence["weak_candidate"]]
        assert evidence["quality_condition"] in QUALITY_CONDITIONS
        assert isinstance(evidence["condition_table_measured"], bool)
    stored = service.client.get(
        f"/api/v1/searches/{body['search']['search_id']}", headers=service.as_user("reviewer")
    ).json()
    assert body["search"]["hits"] == stored["hits"]
    for hit, kept in zip(hits, stored["hits"], strict=True):
        assert kept["face_id"] == hit["face"]["face_id"]
        assert kept["evidence"] == hit["evidence"]  # every field, rates to the last bit
        evidence = hit["evidence"]
        assert (kept["false_match_rate"], kept["verdict"]) == (evidence["false_match_rate"], evidence["verdict"])


def test_a_search_is_stored_with_its_case_and_audited(service: Service) -> None:
    case_id = _open_case(service)
    body = _search(service, case_id, service.gallery.probe, top_k="3")
    top = body["results"][0]["hits"][0]
    assert top["face"]["label"] == "obama"
    assert top["face"]["source_page"] == "https://example.org/obama"
    assert top["face"]["captured_at"].startswith("2020-05-01")
    assert 0 < top["evidence"]["false_match_rate"] < 1e-3 and top["evidence"]["calibrated"]
    assert top["face"]["thumbnail_url"] == f"/api/v1/faces/{top['face']['face_id']}/thumbnail"
    search = body["search"]
    stored = service.client.get(f"/api/v1/searches/{search['search_id']}", headers=service.as_user("auditor")).json()
    assert stored["case_id"] == case_id and stored["purpose"] == "who is on the doorbell camera"
    assert len(stored["probe_sha256"]) == 64
    assert [h["face_id"] for h in stored["hits"]] == [h["face"]["face_id"] for h in body["results"][0]["hits"]]
    assert stored["hits"][0]["similarity"] == pytest.approx(top["similarity"])
    case = service.client.get(f"/api/v1/cases/{case_id}", headers=service.as_user("reviewer")).json()
    assert [s["search_id"] for s in case["searches"]] == [search["search_id"]]
    audit = service.client.get("/api/v1/audit?limit=1000", headers=service.as_user("auditor")).json()
    entry = next(e for e in audit if e["target"] == f"search:{search['search_id']}")
    assert entry["action"] == "search" and entry["actor"] == "investigator"
    assert entry["details"]["probe_sha256"] == stored["probe_sha256"]
    assert entry["details"]["hit_face_ids"] == [h["face_id"] for h in stored["hits"]]


def test_the_probe_is_analysed_outside_the_engine_lock(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent searches overlap their slowest part (the models): only the index search waits for the lock."""
    case_id = _open_case(service)
    analysed = threading.Event()
    real = service.engine.search.analyze

    def spy(data: bytes, name: str) -> Any:
        image = real(data, name)
        analysed.set()
        return image

    monkeypatch.setattr(service.engine.search, "analyze", spy)
    outcome: dict[str, Any] = {}
    with service.engine.lock.writing("a test's write"):  # another request holds the index alone
        worker = threading.Thread(target=lambda: outcome.update(body=_search(service, case_id, service.gallery.probe)))
        worker.start()
        assert analysed.wait(timeout=60), "the probe was not analysed while another request held the engine lock"
        assert "body" not in outcome  # ...but its index search waited for the lock
    worker.join(timeout=60)
    assert outcome["body"]["results"][0]["hits"], outcome


def test_a_search_needs_a_purpose_an_open_case_and_a_photo(service: Service) -> None:
    case_id = _open_case(service)
    headers = service.as_user("investigator")
    files = {"probe": _photo(service.gallery.probe)}
    no_purpose = service.client.post(f"/api/v1/cases/{case_id}/searches", files=files, headers=headers)
    assert no_purpose.status_code == 422 and no_purpose.json()["error"]["code"] == "invalid_request"
    blank = service.client.post(
        f"/api/v1/cases/{case_id}/searches", files=files, data={"purpose": "   "}, headers=headers
    )
    assert blank.status_code == 422 and "purpose" in blank.json()["error"]["message"]
    unknown = service.client.post("/api/v1/cases/4242/searches", files=files, data={"purpose": "p"}, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    not_image = service.client.post(
        f"/api/v1/cases/{case_id}/searches",
        files={"probe": ("x.jpg", b"not an image", "image/jpeg")},
        data={"purpose": "p"},
        headers=headers,
    )
    assert not_image.status_code == 422 and not_image.json()["error"]["code"] == "image_unreadable"
    missing_case_fields = service.client.post("/api/v1/cases", json={"title": "t"}, headers=headers)
    assert missing_case_fields.status_code == 422


def test_reviews_follow_the_four_eyes_rule(service: Service) -> None:
    strict_case = _open_case(service)
    search = _search(service, strict_case, service.gallery.probe)["search"]
    face_id = search["hits"][0]["face_id"]
    url = f"/api/v1/searches/{search['search_id']}/reviews"
    own = service.client.post(
        url, json={"face_id": face_id, "decision": "confirmed"}, headers=service.as_user("investigator")
    )
    assert own.status_code == 403 and "independent review" in own.json()["error"]["message"]
    other = service.client.post(
        url, json={"face_id": face_id, "decision": "confirmed", "note": "same ear"}, headers=service.as_user("reviewer")
    )
    assert other.status_code == 201 and other.json()["reviewer"] == "reviewer"
    colleague = service.client.post(
        url, json={"face_id": face_id, "decision": "rejected"}, headers=service.as_user("investigator2")
    )
    assert colleague.status_code == 201
    wrong = service.client.post(
        url, json={"face_id": face_id, "decision": "maybe"}, headers=service.as_user("reviewer")
    )
    assert wrong.status_code == 422
    stored = service.client.get(f"/api/v1/searches/{search['search_id']}", headers=service.as_user("auditor")).json()
    assert [r["decision"] for r in stored["reviews"]] == ["confirmed", "rejected"]
    # Four eyes is the policy's (independent_review: required by default), not the searcher's: asking to open a
    # case without it is refused (it used to be accepted, and self-confirmation then gave 201).
    relaxed = service.client.post(
        "/api/v1/cases",
        json={"title": "t", "purpose": "p", "legal_basis": "l", "requires_independent_review": False},
        headers=service.as_user("investigator"),
    )
    assert relaxed.status_code == 403 and "required by policy" in relaxed.json()["error"]["message"]


def test_face_and_thumbnail_views_are_audited(service: Service) -> None:
    face_id = int(service.engine.catalog.face_ids(service.engine.model_id)[0])
    within = {"case_id": _open_case(service), "purpose": "look at the lead again"}
    face = service.client.get(f"/api/v1/faces/{face_id}", params=within, headers=service.as_user("reviewer"))
    assert face.status_code == 200 and face.json()["asset_uri"].startswith(str(service.gallery.root))
    thumbnail = service.client.get(
        f"/api/v1/faces/{face_id}/thumbnail", params=within, headers=service.as_user("investigator")
    )
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.content[:2] == b"\xff\xd8"
    entries = service.engine.audit.entries(0, None)
    assert ("reviewer", "view_face", f"face:{face_id}") in {(e.actor, e.action, e.target) for e in entries}
    assert ("investigator", "view_thumbnail", f"face:{face_id}") in {(e.actor, e.action, e.target) for e in entries}


def test_repeated_probes_across_cases_are_listed_for_auditors(service: Service) -> None:
    first_case = _open_case(service)
    second_case = _open_case(service, user="investigator2", title="Fraud 9")
    first = _search(service, first_case, service.gallery.other_probe)["search"]
    again = _search(service, second_case, service.gallery.other_probe, user="investigator2")["search"]
    repeats = service.client.get("/api/v1/audit/repeated-probes", headers=service.as_user("auditor")).json()
    match = [
        r for r in repeats if (r["earlier_search_id"], r["later_search_id"]) == (first["search_id"], again["search_id"])
    ]
    assert match and match[0]["same_photo"] and match[0]["later_user"] == "investigator2"
    assert match[0]["similarity"] == pytest.approx(1.0, abs=1e-4)


def test_compare_belongs_to_a_case(service: Service) -> None:
    case_id = _open_case(service)
    obama = service.gallery.paths_of("obama")
    response = service.client.post(
        "/api/v1/compare",
        files={"a": _photo(obama[0]), "b": _photo(obama[1])},
        data={"case_id": str(case_id), "purpose": "same man in both?"},
        headers=service.as_user("investigator"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["similarity"] > 0.5 and response.json()["evidence"]["gallery_size"] == 1
    assert service.engine.audit.entries(0, None)[-1].action == "compare"


def test_a_search_marks_the_probes_own_photo_and_says_what_it_withheld(service: Service) -> None:
    case_id = _open_case(service)
    own = service.gallery.paths_of("biden")[0]
    body = _search(service, case_id, own, top_k="3")
    (result,) = body["results"]
    assert result["withheld"] == {}
    assert [hit["same_image"] for hit in result["hits"]] == ["identical", "none", "none"]
    assert Path(result["hits"][0]["face"]["asset_uri"]).name == own.name
    schema = service.client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["SameImage"]["enum"] == ["none", "identical", "near_duplicate"]
    refused = service.client.post(
        f"/api/v1/cases/{case_id}/searches",
        files={"probe": _photo(own)},
        data={"purpose": "who?", "top_k": "0"},
        headers=service.as_user("investigator"),
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request"


def test_compare_chooses_the_face_of_each_photo(service: Service) -> None:
    case_id = _open_case(service)
    two_people = service.gallery.root / "examples" / "two_people.jpg"  # face 0: Obama, face 1: Biden
    biden = service.gallery.paths_of("biden")[0]

    def compare(**faces: str) -> Any:
        return service.client.post(
            "/api/v1/compare",
            files={"a": _photo(two_people), "b": _photo(biden)},
            data={"case_id": str(case_id), "purpose": "same man in both?", **faces},
            headers=service.as_user("investigator"),
        )

    same, other = compare(face_a="1", face_b="0").json(), compare(face_a="0").json()
    assert (same["face_index_a"], same["face_index_b"], other["face_index_a"]) == (1, 0, 0)
    assert same["similarity"] > 0.6 > 0.3 > other["similarity"]
    missing = compare(face_a="2")
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "face_selection"
    assert "face 2 asked for" in missing.json()["error"]["message"]


def test_users_passwords_and_keys(service: Service) -> None:
    created = service.client.post(
        "/api/v1/users",
        json={"name": "auditor2", "role": "auditor", "password": "correct horse battery"},
        headers=service.as_user("admin"),
    )
    assert created.status_code == 201 and created.json()["api_key"].startswith("ft_")
    me = service.client.get("/api/v1/me", headers={"Authorization": f"Bearer {created.json()['api_key']}"})
    assert me.json()["role"] == "auditor"
    basic = base64.b64encode(b"auditor2:correct horse battery").decode()
    assert service.client.get("/api/v1/me", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    wrong = base64.b64encode(b"auditor2:wrong").decode()
    assert service.client.get("/api/v1/me", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    taken = service.client.post(
        "/api/v1/users", json={"name": "auditor2", "role": "auditor"}, headers=service.as_user("admin")
    )
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    gone = service.client.post("/api/v1/users/auditor2/deactivate", headers=service.as_user("admin"))
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert service.client.get("/api/v1/me", headers={"X-API-Key": created.json()["api_key"]}).status_code == 401
    assert service.client.get("/api/v1/me", headers={"Authorization": f"Basic {basic}"}).status_code == 401
    myself = service.client.post("/api/v1/users/admin/deactivate", headers=service.as_user("admin"))
    assert myself.status_code == 409
    assert service.client.get("/api/v1/audit/verify", headers=service.as_user("auditor")).json()["ok"]
