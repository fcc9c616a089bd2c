"""The admin's case access page: members are added and removed in the browser (no API or CLI step), with the same
rules and audit entries as the API's /cases/{id}/members; a reviewer reaches a case once added and no longer once
removed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facetrace.core.vocabulary import AuditAction
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Site:
    engine: Engine
    clients: dict[str, TestClient]
    case_id: int

    def csrf(self, name: str) -> str:
        token = _CSRF.search(self.clients[name].get("/ui/", follow_redirects=True).text)
        assert token
        return token.group(1)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    engine = open_engine(tmp_path / "data", workers=1)
    hasher = Argon2Hasher()
    users = [("adam", "admin"), ("ines", "investigator"), ("ravi", "reviewer"), ("olga", "auditor")]
    for name, role in users:
        engine.users.add_user(name, role, "cli:test", password=PASSWORD, hasher=hasher)
    case = engine.cases.open_case(engine.users.user("ines"), "Doorbell", "identify the caller", "warrant 9")
    app = create_app(engine)
    clients = {}
    for name, _ in users:
        client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        token = _CSRF.search(client.get("/ui/login").text)
        assert token
        signed = client.post("/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1)})
        assert signed.status_code == 303
        clients[name] = client
    yield Site(engine, clients, case.case_id)
    for client in clients.values():
        client.close()
    engine.close()


def test_an_admin_adds_and_removes_a_reviewer_in_the_browser(site: Site) -> None:
    ravi = site.clients["ravi"]
    assert ravi.get(f"/ui/cases/{site.case_id}").status_code == 404  # not a member yet
    page = site.clients["adam"].get("/ui/admin/cases")
    assert page.status_code == 200
    assert f'id="case-{site.case_id}"' in page.text and "Owner <strong>ines</strong>" in page.text
    # Only investigators and reviewers other than the owner are offered.
    offered = re.findall(r'<option value="([^"]+)"', page.text)
    assert offered == ["ravi"]

    added = site.clients["adam"].post(
        f"/ui/admin/cases/{site.case_id}/members", data={"name": "ravi", "csrf_token": site.csrf("adam")}
    )
    assert added.status_code == 303
    assert [m.user_name for m in site.engine.cases.members(site.case_id)] == ["ravi"]
    assert ravi.get(f"/ui/cases/{site.case_id}").status_code == 200
    assert f'id="member-{site.case_id}-ravi"' in site.clients["adam"].get("/ui/admin/cases").text

    again = site.clients["adam"].post(
        f"/ui/admin/cases/{site.case_id}/members", data={"name": "ravi", "csrf_token": site.csrf("adam")}
    )
    assert again.status_code == 409 and "member of case" in again.text
    auditor = site.clients["adam"].post(
        f"/ui/admin/cases/{site.case_id}/members", data={"name": "olga", "csrf_token": site.csrf("adam")}
    )
    assert auditor.status_code == 422 and "auditors read every case" in auditor.text

    removed = site.clients["adam"].post(
        f"/ui/admin/cases/{site.case_id}/members/ravi/remove", data={"csrf_token": site.csrf("adam")}
    )
    assert removed.status_code == 303
    assert ravi.get(f"/ui/cases/{site.case_id}").status_code == 404
    actions = [(e.actor, e.action, e.target, e.details.get("user")) for e in site.engine.audit.entries(0)]
    target = f"case:{site.case_id}"
    assert ("adam", AuditAction.ADD_CASE_MEMBER, target, "ravi") in actions
    assert ("adam", AuditAction.REMOVE_CASE_MEMBER, target, "ravi") in actions


def test_the_page_and_its_forms_are_for_admins_only(site: Site) -> None:
    for name in ("ines", "ravi", "olga"):
        assert site.clients[name].get("/ui/admin/cases").status_code == 403
        refused = site.clients[name].post(
            f"/ui/admin/cases/{site.case_id}/members", data={"name": "ravi", "csrf_token": site.csrf(name)}
        )
        assert refused.status_code == 403
    assert site.engine.cases.members(site.case_id) == []
    without_token = site.clients["adam"].post(f"/ui/admin/cases/{site.case_id}/members", data={"name": "ravi"})
    assert without_token.status_code == 403 and site.engine.cases.members(site.case_id) == []
