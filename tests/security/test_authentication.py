"""Authentication that leaks nothing: the same work for an unknown name as for a wrong password, forwarded headers
believed only from configured proxies, and user names that cannot pass for the audit log's own actors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

import httpx

from facetrace.core.errors import AuthenticationError, InvalidRequestError
from facetrace.core.types import User
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.limits import BodyGuard, door_checked_user
from facetrace.server.serving import proxy_options, server_config


class CountingHasher:
    """A hasher that counts verifications (what costs the time an attacker measures)."""

    def __init__(self) -> None:
        self.verified = 0

    def hash(self, password: str) -> str:
        return "plain:" + password

    def verify(self, encoded: str, password: str) -> bool:
        self.verified += 1
        return encoded == "plain:" + password


def test_an_unknown_name_costs_the_same_verification_as_a_wrong_password(tmp_path: Path) -> None:
    with open_engine(tmp_path / "data", workers=1) as engine:
        hasher = CountingHasher()
        engine.users.add_user("ivan", Role.INVESTIGATOR, "test", password="a-long-password", hasher=hasher)
        engine.users.add_user("nopass", Role.REVIEWER, "test")  # no password set
        for name, password in [("ivan", "wrong-password"), ("nobody", "wrong-password"), ("nopass", "x" * 12)]:
            before = hasher.verified
            with pytest.raises(AuthenticationError, match="wrong user name or password"):
                engine.users.authenticate_password(name, password, hasher)
            assert hasher.verified - before == 1, name
        assert engine.users.authenticate_password("ivan", "a-long-password", hasher).name == "ivan"


@pytest.mark.parametrize("name", ["anonymous", "cli:operator", "system", "a b", ":x", "x" * 65, "ingest:run 3"])
def test_names_that_could_pass_for_the_audit_logs_own_actors_are_refused(tmp_path: Path, name: str) -> None:
    with open_engine(tmp_path / "data", workers=1) as engine, pytest.raises(InvalidRequestError):
        engine.users.add_user(name, Role.REVIEWER, "test")


@contextmanager
def _served(engine: Engine) -> Iterator[str]:
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(engine), engine, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _failed_sign_in_address(base: str, engine: Engine) -> str:
    response = httpx.get(
        f"{base}/api/v1/me", auth=("ivan", "wrong-password!"), headers={"X-Forwarded-For": "203.0.113.7"}
    )
    assert response.status_code == 401
    failed = [e for e in engine.audit.entries(0) if e.action == AuditAction.SIGN_IN_FAILED]
    return str(failed[-1].details["address"])


@pytest.mark.parametrize(("trusted", "recorded"), [((), "127.0.0.1"), (("127.0.0.1",), "203.0.113.7")])
def test_x_forwarded_for_is_believed_only_from_configured_proxies(
    tmp_path: Path, trusted: tuple[str, ...], recorded: str
) -> None:
    """uvicorn's default believes X-Forwarded-For from 127.0.0.1: anyone on the host could then pick the address
    the sign-in lockout counts and the audit log records."""
    engine = open_engine(tmp_path / "data", workers=1, trusted_proxies=trusted)
    try:
        engine.users.add_user("ivan", Role.INVESTIGATOR, "test", password="a-long-password", hasher=CountingHasher())
        with _served(engine) as base:
            assert _failed_sign_in_address(base, engine) == recorded
    finally:
        engine.close()


def test_no_proxy_means_no_forwarded_headers() -> None:
    assert proxy_options(()) == (False, None)
    assert proxy_options(("10.0.0.2", "10.0.0.3")) == (True, "10.0.0.2,10.0.0.3")


def test_an_api_key_is_looked_up_once_per_request_and_a_revoked_one_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request with a body has its key checked before the body is read (server/limits.py); the route reuses that
    check rather than reading the catalog again. The reuse is per request: a key revoked in between is refused."""
    from fastapi.testclient import TestClient

    from facetrace.governance.users import UserService

    looked_up: list[str] = []
    original = UserService.authenticate_key

    def counted(self: UserService, api_key: str) -> User:
        looked_up.append(api_key)
        return original(self, api_key)

    monkeypatch.setattr(UserService, "authenticate_key", counted)
    with open_engine(tmp_path / "data", workers=1) as engine:
        issued = engine.users.add_user("ivan", Role.INVESTIGATOR, "test")
        headers = {"X-API-Key": issued.api_key}
        case = {"title": "t", "purpose": "p", "legal_basis": "l"}
        with TestClient(create_app(engine), raise_server_exceptions=False) as client:
            assert client.post("/api/v1/cases", headers=headers, json=case).status_code == 201
            assert looked_up == [issued.api_key]  # at the door only
            assert client.get("/api/v1/cases", headers=headers).status_code == 200
            assert len(looked_up) == 2  # no body, no door check: the route looks it up
            bearer = {"Authorization": f"Bearer {issued.api_key}"}
            assert client.post("/api/v1/cases", headers=bearer, json=case).status_code == 201
            assert len(looked_up) == 3
            # The header twice: the door checks the last, the route the first (not a key, refused, not a 500).
            twice = [("X-API-Key", b"ft_\xe4"), ("X-API-Key", issued.api_key.encode())]
            assert client.post("/api/v1/cases", headers=twice, json=case).status_code == 401
            (key,) = engine.users.api_keys("ivan")
            engine.users.revoke_key("ivan", key.key_id, "test")
            assert client.post("/api/v1/cases", headers=headers, json=case).status_code == 401
            assert client.get("/api/v1/cases", headers=headers).status_code == 401


def test_a_door_checked_key_answers_only_for_that_key() -> None:
    user = User(1, "ivan", Role.INVESTIGATOR, datetime.now(UTC))
    state: dict[str, Any] = {}
    assert door_checked_user(state, "ft_a") is None
    BodyGuard(_no_app, check_key=lambda key: user, session_ok=lambda cookie, path: False)._unauthenticated(
        "/api/v1/cases", {"x-api-key": "ft_a"}, state
    )
    assert door_checked_user(state, "ft_a") == user
    assert door_checked_user(state, "ft_b") is None
    assert door_checked_user(state, "ft_\u00e4") is None  # a header decoded as latin-1 may hold any of its letters


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called")
