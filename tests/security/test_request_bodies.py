"""Request bodies are bounded and callers known before a byte of a body is read (server/limits.py): an ASGI call
with a receive() that counts what the application pulls, so "never read" is measured, not assumed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")

from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.limits import MAX_OTHER_BODY_BYTES

CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Engine, str]]:
    engine = open_engine(tmp_path_factory.mktemp("limits") / "data", workers=1)
    key = engine.users.create_admin("root", "test").api_key
    try:
        yield create_app(engine), engine, key
    finally:
        engine.close()


def _call(app: Any, method: str, path: str, headers: dict[str, str], body_bytes: int) -> tuple[int, bytes, int]:
    """(status, response body, body bytes the application read) for a request streaming body_bytes of zeros."""
    pulled = 0
    remaining = body_bytes
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled, remaining
        chunk = min(CHUNK, remaining)
        remaining -= chunk
        pulled += chunk
        return {"type": "http.request", "body": b"\0" * chunk, "more_body": remaining > 0}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


def test_an_unauthenticated_100_mb_body_gets_its_401_unread(served: tuple[Any, Engine, str]) -> None:
    app, _, _ = served
    size = 100 * 1024 * 1024
    status, body, pulled = _call(app, "POST", "/api/v1/cases", {"content-type": "application/json"}, size)
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthenticated"
    assert pulled == 0


def test_a_wrong_api_key_is_refused_before_the_body_is_read(served: tuple[Any, Engine, str]) -> None:
    app, _, _ = served
    headers = {"x-api-key": "ft_not_a_key", "content-type": "multipart/form-data; boundary=x"}
    status, _, pulled = _call(app, "POST", "/api/v1/compare", headers, 60 * 1024 * 1024)
    assert status == 401 and pulled == 0


def test_a_declared_body_over_the_cap_is_refused_unread(served: tuple[Any, Engine, str]) -> None:
    app, _, key = served
    size = MAX_OTHER_BODY_BYTES + 1
    headers = {"x-api-key": key, "content-type": "application/json", "content-length": str(size)}
    status, body, pulled = _call(app, "POST", "/api/v1/cases", headers, size)
    assert status == 413 and "at most" in json.loads(body)["error"]["message"] and pulled == 0


def test_an_undeclared_body_is_cut_off_at_the_cap(served: tuple[Any, Engine, str]) -> None:
    app, _, key = served
    headers = {"x-api-key": key, "content-type": "application/json"}  # no content-length: streamed
    status, body, pulled = _call(app, "POST", "/api/v1/cases", headers, 20 * MAX_OTHER_BODY_BYTES)
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large"
    assert pulled <= MAX_OTHER_BODY_BYTES + CHUNK


def test_a_ui_form_post_without_a_session_is_sent_to_sign_in_unread(served: tuple[Any, Engine, str]) -> None:
    app, _, _ = served
    headers = {"content-type": "multipart/form-data; boundary=x"}
    status, _, pulled = _call(app, "POST", "/ui/cases/1/searches", headers, 10 * 1024 * 1024)
    assert status == 303 and pulled == 0


def test_a_small_authenticated_body_goes_through(served: tuple[Any, Engine, str]) -> None:
    app, _, key = served
    body = json.dumps({"title": "t", "purpose": "p", "legal_basis": "l"}).encode()
    headers = {"x-api-key": key, "content-type": "application/json", "content-length": str(len(body))}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/cases",
        "raw_path": b"/api/v1/cases",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m for m in sent if m["type"] == "http.response.start")["status"]
    assert status in (201, 403)  # admin may not open cases (403 from the route): either way the route ran
