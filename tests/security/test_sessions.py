"""Web sessions end on the server: a copied session cookie stops working at sign-out, at a password change and at
deactivation (it used to work for its whole 12 hours)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from facetrace.core.vocabulary import Role
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.ui.sessions import SESSION_COOKIE

PASSWORD = "a-long-password-1"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with open_engine(tmp_path / "data", workers=1) as opened:
        hasher = Argon2Hasher()
        for name, role in [("ivan", Role.INVESTIGATOR), ("root", Role.ADMIN)]:
            opened.users.add_user(name, role, "test", password=PASSWORD, hasher=hasher)
        yield opened


def _signed_in(client: TestClient, name: str) -> str:
    page = client.get("/ui/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    answer = client.post(
        "/ui/login",
        data={"username": name, "password": PASSWORD, "csrf_token": csrf.group(1), "next": "/ui/cases"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return str(client.cookies[SESSION_COOKIE])


def _with_cookie(engine: Engine, cookie: str) -> int:
    """The status of the cases page for a fresh client that holds only this cookie (a copy of it)."""
    with TestClient(create_app(engine)) as thief:
        thief.cookies.set(SESSION_COOKIE, cookie)
        return thief.get("/ui/cases", follow_redirects=False).status_code


def test_a_copied_cookie_stops_working_at_sign_out(engine: Engine) -> None:
    with TestClient(create_app(engine)) as other_device:
        elsewhere = _signed_in(other_device, "ivan")
    with TestClient(create_app(engine)) as client:
        cookie = _signed_in(client, "ivan")
        assert _with_cookie(engine, cookie) == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/cases").text)
        assert csrf is not None
        assert client.post("/ui/logout", data={"csrf_token": csrf.group(1)}, follow_redirects=False).status_code == 303
    assert _with_cookie(engine, cookie) == 303  # sent to sign in
    assert _with_cookie(engine, elsewhere) == 200  # signing out on one device leaves the others signed in


@pytest.mark.parametrize("how", ["password", "deactivate"])
def test_a_password_change_or_deactivation_ends_the_users_sessions(engine: Engine, how: str) -> None:
    with TestClient(create_app(engine)) as client:
        cookie = _signed_in(client, "ivan")
    assert _with_cookie(engine, cookie) == 200
    if how == "password":
        engine.users.set_password("ivan", "another-long-password", "root", Argon2Hasher())
    else:
        engine.users.deactivate("ivan", "root")
    assert _with_cookie(engine, cookie) == 303
    if how == "password":
        with TestClient(create_app(engine)) as client:
            page = client.get("/ui/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf is not None
            fresh = client.post(
                "/ui/login",
                data={"username": "ivan", "password": "another-long-password", "csrf_token": csrf.group(1)},
                follow_redirects=False,
            )
            assert fresh.status_code == 303  # a new session after the change works
            assert _with_cookie(engine, str(client.cookies[SESSION_COOKIE])) == 200
