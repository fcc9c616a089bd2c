"""Accounts on a real engine and the real server: sign-in lockout (HTTP Basic and the web UI form) with its audit
entries, per-key rate limits with 429 and Retry-After, revoking one API key (API and CLI), and setting a password
from the CLI and signing in with it. No photos are needed: these paths never run the face models."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from facetrace.cli.main import app as cli
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
runner = CliRunner()


@dataclass
class Server:
    engine: Engine
    app: FastAPI
    admin_key: str

    def client(self, address: str = "testclient") -> TestClient:
        return TestClient(self.app, raise_server_exceptions=False, follow_redirects=False, client=(address, 50000))

    def add(self, name: str, role: str = "investigator", password: str | None = PASSWORD) -> str:
        hasher = Argon2Hasher() if password else None
        return self.engine.users.add_user(name, role, "cli:test", password=password, hasher=hasher).api_key

    def actions(self, since: int) -> list[tuple[str, str, str, dict[str, object]]]:
        return [(e.actor, e.action, e.target, e.details) for e in self.engine.audit.entries(since)]

    def head(self) -> int:
        return len(self.engine.audit.entries(0))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    engine = open_engine(
        tmp_path_factory.mktemp("accounts") / "data",
        workers=1,
        sign_in_max_failures=3,
        sign_in_max_failures_per_address=6,
        sign_in_lockout_s=120,
        api_requests_per_minute=2,  # a token every 30 s: no slow machine refills one within a test
        api_burst=5,
        search_requests_per_minute=1,
        search_burst=2,
    )
    admin_key = engine.users.create_admin("root", "cli:test").api_key
    yield Server(engine, create_app(engine), admin_key)
    engine.close()


def _ui_sign_in(client: TestClient, name: str, password: str) -> httpx.Response:
    token = _CSRF.search(client.get("/ui/login").text)
    assert token
    response: httpx.Response = client.post(
        "/ui/login", data={"username": name, "password": password, "csrf_token": token.group(1)}
    )
    return response


def test_http_basic_locks_a_name_out_after_three_failures_even_with_the_right_password(server: Server) -> None:
    server.add("bea")
    client = server.client("10.0.0.1")
    assert client.get("/api/v1/me", auth=("bea", PASSWORD)).status_code == 200
    since = server.head()
    for _ in range(3):
        wrong = client.get("/api/v1/me", auth=("bea", "guess " + PASSWORD))
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthenticated"
    locked = client.get("/api/v1/me", auth=("bea", PASSWORD))
    assert locked.status_code == 429, locked.text
    assert locked.json()["error"]["code"] == "rate_limited"
    assert 100 <= int(locked.headers["Retry-After"]) <= 120
    # From another address too: the name is locked, not the address.
    assert server.client("10.0.0.2").get("/api/v1/me", auth=("bea", PASSWORD)).status_code == 429
    # Another user from the same address still signs in; API keys are not passwords and are not locked.
    server.add("bob")
    assert client.get("/api/v1/me", auth=("bob", PASSWORD)).status_code == 200
    assert client.get("/api/v1/me", headers={"X-API-Key": server.admin_key}).status_code == 200

    entries = [entry for entry in server.actions(since) if entry[1].startswith("sign_in")]
    assert [action for _, action, _, _ in entries] == ["sign_in_failed"] * 3 + ["sign_in_lockout"]
    assert all(actor == "anonymous" and target == "user:bea" for actor, _, target, _ in entries)
    assert entries[-1][3]["lockout_s"] == 120 and entries[0][3]["address"] == "10.0.0.1"
    assert PASSWORD not in json.dumps([details for *_, details in entries])
    assert server.engine.audit.verify().ok


def test_one_address_guessing_many_names_is_locked_out(server: Server) -> None:
    client = server.client("10.0.0.66")
    since = server.head()
    for name in ("n1", "n2", "n3", "n4", "n5", "n6"):
        assert client.get("/api/v1/me", auth=(name, "guess")).status_code == 401
    server.add("carl")
    blocked = client.get("/api/v1/me", auth=("carl", PASSWORD))
    assert blocked.status_code == 429 and "too many failed sign-ins" in blocked.json()["error"]["message"]
    assert server.client("10.0.0.67").get("/api/v1/me", auth=("carl", PASSWORD)).status_code == 200
    lockouts = [target for _, action, target, _ in server.actions(since) if action == "sign_in_lockout"]
    assert lockouts == ["address:10.0.0.66"]


def test_the_sign_in_form_is_locked_out_too_and_sign_ins_are_audited(server: Server) -> None:
    server.add("dora")
    client = server.client("10.0.1.1")
    since = server.head()
    good = _ui_sign_in(client, "dora", PASSWORD)
    assert good.status_code == 303
    assert server.actions(since)[-1][:3] == ("dora", "sign_in", "user:dora")
    client = server.client("10.0.1.1")  # signed out again
    for _ in range(3):
        wrong = _ui_sign_in(client, "dora", "not it at all")
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    locked = _ui_sign_in(client, "dora", PASSWORD)
    assert locked.status_code == 429
    assert "Signing in is locked" in locked.text and locked.headers["Retry-After"]
    assert client.get("/ui/cases").status_code == 303  # still signed out: the right password did not sign in
    # The lockout is shared with HTTP Basic: one guard per server.
    assert client.get("/api/v1/me", auth=("dora", PASSWORD)).status_code == 429


def test_each_api_key_has_its_own_bucket_with_429_and_retry_after(server: Server) -> None:
    first, second = server.add("eve", password=None), server.add("fay", password=None)
    statuses = [server.client().get("/api/v1/me", headers={"X-API-Key": first}).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    limited = server.client().get("/api/v1/me", headers={"Authorization": f"Bearer {first}"})
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert error["code"] == "rate_limited" and "at most 2 requests a minute" in error["message"]
    assert 20 <= int(limited.headers["Retry-After"]) <= 30  # 2 a minute: a token every 30 s
    assert server.client().get("/api/v1/me", headers={"X-API-Key": second}).status_code == 200


def test_searches_have_a_smaller_budget_of_their_own(server: Server) -> None:
    key = server.add("gus", password=None)
    statuses = [
        server.client()
        .post("/api/v1/cases/999/searches", data={"purpose": "p"}, headers={"X-API-Key": key})
        .status_code
        for _ in range(3)
    ]
    assert statuses == [422, 422, 429]  # no probe sent: refused after the budget is spent, before any model runs
    assert server.client().get("/api/v1/cases", headers={"X-API-Key": key}).status_code == 200


def test_an_admin_revokes_one_key_over_the_api(server: Server) -> None:
    kept = server.add("hal", password=None)
    leaked = server.engine.users.issue_key("hal", "cli:test").api_key
    admin = {"X-API-Key": server.add("root2", "admin", password=None)}  # a fresh key: a full bucket
    client = server.client("10.0.2.1")
    keys = client.get("/api/v1/users/hal/keys", headers=admin).json()
    assert [key["prefix"] for key in keys] == [kept[:10], leaked[:10]]
    assert all(key["active"] and "api_key" not in key for key in keys)
    since = server.head()
    revoked = client.post(f"/api/v1/users/hal/keys/{keys[1]['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["active"] is False and revoked.json()["revoked_at"]
    assert client.get("/api/v1/me", headers={"X-API-Key": leaked}).status_code == 401
    assert client.get("/api/v1/me", headers={"X-API-Key": kept}).status_code == 200
    again = client.post(f"/api/v1/users/hal/keys/{keys[1]['key_id']}/revoke", headers=admin)
    assert again.status_code == 409
    assert client.post("/api/v1/users/hal/keys/999999/revoke", headers=admin).status_code == 404
    assert server.actions(since)[0][:3] == ("root2", "revoke_api_key", "user:hal")


def test_cli_sets_a_password_to_sign_in_with_and_revokes_a_key(server: Server) -> None:
    server.add("ivy", password=None)
    data = str(server.engine.settings.data)
    client = server.client("10.0.3.1")
    assert _ui_sign_in(client, "ivy", PASSWORD).status_code == 401
    short = runner.invoke(cli, ["users", "set-password", "ivy", "--password-stdin", "--data", data], input="short\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    done = runner.invoke(
        cli, ["users", "set-password", "ivy", "--password-stdin", "--data", data], input=PASSWORD + "\n"
    )
    assert done.exit_code == 0, done.output
    signed_in = _ui_sign_in(client, "ivy", PASSWORD)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/"
    prompted = runner.invoke(cli, ["users", "set-password", "ivy", "--data", data], input="mismatched one\nother\n" * 3)
    assert prompted.exit_code != 0  # two different entries are refused
    set_entries = [e for e in server.engine.audit.entries(0) if e.action == "set_password"]
    assert [e.target for e in set_entries] == ["user:ivy"] and set_entries[0].actor.startswith("cli:")
    assert PASSWORD not in json.dumps([e.details for e in server.engine.audit.entries(0)])

    listed = runner.invoke(cli, ["users", "keys", "ivy", "--json", "--data", data])
    assert listed.exit_code == 0, listed.output
    key_id = json.loads(listed.output)[0]["key_id"]
    revoked = runner.invoke(cli, ["users", "revoke-key", "ivy", str(key_id), "--data", data])
    assert revoked.exit_code == 0 and f"revoked key {key_id}" in revoked.output
    assert not server.engine.users.api_keys("ivy")[0].active
    twice = runner.invoke(cli, ["users", "revoke-key", "ivy", str(key_id), "--data", data])
    assert twice.exit_code == 2 and "revoked already" in twice.output


def test_the_openapi_document_declares_429(server: Server) -> None:
    spec = server.client().get("/openapi.json").json()
    assert "429" in spec["paths"]["/api/v1/me"]["get"]["responses"]
