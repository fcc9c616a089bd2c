"""Every text a person gives has a length limit (core/limits.py): the API's request models, the web UI's forms and
the services behind the CLI and Python refuse a longer one with a clear 422 / InvalidRequestError, and store
nothing. A 10 MB case title used to be accepted and returned to every reader."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from facetrace.core.errors import InvalidRequestError
from facetrace.core.limits import MAX_LABEL, MAX_NOTE, MAX_PASSWORD, MAX_TEXT, MAX_TITLE
from facetrace.core.vocabulary import Role
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher

PASSWORD = "a-long-password-1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Served:
    engine: Engine
    client: TestClient
    keys: dict[str, str]
    case_id: int
    search_id: int


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    engine = open_engine(tmp_path_factory.mktemp("limits") / "data", workers=1)
    keys = {"root": engine.users.create_admin("root", "test").api_key}
    for name, role in [("ivan", Role.INVESTIGATOR), ("rita", Role.REVIEWER)]:
        keys[name] = engine.users.add_user(name, role, "test", password=PASSWORD, hasher=Argon2Hasher()).api_key
    ivan = engine.users.user("ivan")
    case = engine.cases.open_case(ivan, "Case 1", "a purpose", "a warrant")
    search = engine.cases.record_search(ivan, case, "why", "0" * 64, "probe.jpg", engine.model_id, None, [])
    with TestClient(create_app(engine), raise_server_exceptions=False, follow_redirects=False) as client:
        yield Served(engine, client, keys, case.case_id, search.search_id)
    engine.close()


def _post(served: Served, who: str, path: str, **kwargs: Any) -> Any:
    return served.client.post(path, headers={"X-API-Key": served.keys[who]}, **kwargs)


def _json_cases() -> list[tuple[str, str, dict[str, Any], str]]:
    """(who, path, body with one field one character too long, the field) for every JSON request model."""
    case = {"title": "t", "purpose": "p", "legal_basis": "l"}
    return [
        ("ivan", "/api/v1/cases", {**case, "title": "x" * (MAX_TITLE + 1)}, "title"),
        ("ivan", "/api/v1/cases", {**case, "purpose": "x" * (MAX_TEXT + 1)}, "purpose"),
        ("ivan", "/api/v1/cases", {**case, "legal_basis": "x" * (MAX_TEXT + 1)}, "legal_basis"),
        ("ivan", "/api/v1/cases/{case}/close", {"reason": "x" * (MAX_TEXT + 1)}, "reason"),
        (
            "rita",
            "/api/v1/searches/{search}/reviews",
            {"face_id": 1, "decision": "confirmed", "note": "x" * (MAX_NOTE + 1)},
            "note",
        ),
        ("root", "/api/v1/erasures/faces", {"face_ids": [1], "reason": "x" * (MAX_TEXT + 1)}, "reason"),
        ("root", "/api/v1/erasures/person", {"label": "x" * (MAX_LABEL + 1), "reason": "r"}, "label"),
        ("root", "/api/v1/erasures/person/preview", {"label": "x" * (MAX_LABEL + 1)}, "label"),
        ("root", "/api/v1/users", {"name": "x" * 65, "role": "reviewer"}, "name"),
        (
            "root",
            "/api/v1/users",
            {"name": "newbie", "role": "reviewer", "password": "x" * (MAX_PASSWORD + 1)},
            "password",
        ),
    ]


@pytest.mark.parametrize(("who", "path", "body", "field"), _json_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_json_text_field_has_a_length_limit(
    served: Served, who: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = served.engine.audit.head().seq
    answer = _post(served, who, path.format(case=served.case_id, search=served.search_id), json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request" and field in error["message"] and "at most" in error["message"]
    assert served.engine.audit.head().seq == before  # nothing was done, nothing recorded


def test_a_title_at_the_limit_is_kept_and_a_half_megabyte_one_refused(served: Served) -> None:
    body = {"title": "x" * MAX_TITLE, "purpose": "p" * MAX_TEXT, "legal_basis": "l"}
    assert _post(served, "ivan", "/api/v1/cases", json=body).status_code == 201
    cases = len(served.engine.cases.cases())
    refused = _post(served, "ivan", "/api/v1/cases", json={**body, "title": "x" * 500_000})
    assert refused.status_code == 422 and len(served.engine.cases.cases()) == cases


@pytest.mark.parametrize(
    ("who", "path", "data", "field"),
    [
        ("ivan", "/api/v1/cases/{case}/searches", {"purpose": "x" * (MAX_TEXT + 1)}, "purpose"),
        ("ivan", "/api/v1/compare", {"case_id": "1", "purpose": "x" * (MAX_TEXT + 1)}, "purpose"),
        ("root", "/api/v1/erasures/photo", {"reason": "x" * (MAX_TEXT + 1)}, "reason"),
        ("root", "/api/v1/ingest/jobs", {"label": "x" * (MAX_LABEL + 1)}, "label"),
        ("root", "/api/v1/ingest/jobs", {"legal_basis": "x" * (MAX_TEXT + 1)}, "legal_basis"),
    ],
)
def test_every_form_text_field_has_a_length_limit(
    served: Served, who: str, path: str, data: dict[str, str], field: str
) -> None:
    photo = ("p.jpg", b"not read: the form is refused first", "image/jpeg")
    files = {name: photo for name in ("probe", "a", "b", "photo", "photos")}
    answer = _post(served, who, path.format(case=served.case_id), data=data, files=files)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["message"]


def test_an_uploaded_files_name_is_bounded(served: Served) -> None:
    answer = _post(
        served,
        "ivan",
        f"/api/v1/cases/{served.case_id}/searches",
        data={"purpose": "p"},
        files={"probe": ("x" * 2000 + ".jpg", b"\xff\xd8", "image/jpeg")},
    )
    assert answer.status_code == 422 and "file name" in answer.json()["error"]["message"]


def test_the_services_bound_the_same_fields_for_the_cli_and_python(served: Served) -> None:
    engine = served.engine
    ivan, rita = engine.users.user("ivan"), engine.users.user("rita")
    long_text = "x" * (MAX_TEXT + 1)
    refusals = [
        lambda: engine.cases.open_case(ivan, "x" * (MAX_TITLE + 1), "p", "l"),
        lambda: engine.cases.open_case(ivan, "t", long_text, "l"),
        lambda: engine.cases.open_case(ivan, "t", "p", long_text),
        lambda: engine.cases.close_case(ivan, served.case_id, long_text),
        lambda: engine.cases.check_search_allowed(ivan, served.case_id, long_text),
        lambda: engine.cases.review(rita, served.search_id, 1, "confirmed", "x" * (MAX_NOTE + 1)),
        lambda: engine.erasure.erase_faces("root", [1], long_text),
        lambda: engine.erasure.preview_person("root", "x" * (MAX_LABEL + 1)),
        lambda: engine.users.set_password("ivan", "x" * (MAX_PASSWORD + 1), "root", Argon2Hasher()),
    ]
    for refuse in refusals:
        with pytest.raises(InvalidRequestError, match=r"at most [\d,]+ characters"):
            refuse()
    assert engine.cases.case(served.case_id).status == "open"


def test_ui_forms_refuse_over_long_text_with_the_services_message(served: Served) -> None:
    with TestClient(served.client.app, raise_server_exceptions=False, follow_redirects=False) as browser:
        token = _CSRF.search(browser.get("/ui/login").text)
        assert token
        signed = browser.post(
            "/ui/login", data={"username": "ivan", "password": PASSWORD, "csrf_token": token.group(1)}
        )
        assert signed.status_code == 303
        csrf = _CSRF.search(browser.get("/ui/cases").text)
        assert csrf
        cases = len(served.engine.cases.cases())
        page = browser.post(
            "/ui/cases",
            data={"title": "x" * (MAX_TITLE + 1), "purpose": "p", "legal_basis": "l", "csrf_token": csrf.group(1)},
        )
        assert page.status_code == 422 and "at most 200 characters" in page.text
        assert len(served.engine.cases.cases()) == cases
        closing = browser.post(
            f"/ui/cases/{served.case_id}/close", data={"reason": "x" * (MAX_TEXT + 1), "csrf_token": csrf.group(1)}
        )
        assert closing.status_code == 422 and "at most 2,000 characters" in closing.text
        assert served.engine.cases.case(served.case_id).status == "open"
        name = browser.post("/ui/login", data={"username": "x" * 300, "password": "p", "csrf_token": csrf.group(1)})
        assert name.status_code == 422  # refused before any password check
