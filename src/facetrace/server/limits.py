"""Request bodies bounded and callers known before a byte of a body is read (an ASGI middleware).

FastAPI reads and spools a request's body (a form's uploads, a JSON document) before it runs the route's
dependencies, authentication among them: four unauthenticated 100 MB JSON bodies once raised the server's memory
to 1.25 GB before each got its 401. BodyGuard runs first:

- a body larger than its route's cap is refused with 413 from its Content-Length, before it is read, and a body
  without one (chunked) is counted as it streams and cut off at the cap;
- an API request with a body and no valid credentials gets its 401 before the body is read: an API key is checked
  against the catalog, a password only for its syntax (the route checks it, under the sign-in lockout); the user a
  key was checked as is left in the request's state (door_checked_user), so the route's authentication
  (server/auth.py) does not read the catalog a second time for the same request;
- a web UI form post needs a signed session cookie (the sign-in form's own pre-sign-in session included); without
  one it is sent to the sign-in page, as the UI's pages do.

Caps: uploads of an ingest job MAX_INGEST_BODY_BYTES, routes that take photos MAX_PHOTO_BODY_BYTES (two photos of
read_upload's limit and the form around them), every other body MAX_OTHER_BODY_BYTES.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from facetrace.core.errors import AuthenticationError
from facetrace.core.types import User
from facetrace.server.api.common import MAX_UPLOAD_BYTES
from facetrace.server.jobs import MAX_UPLOAD_TOTAL_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_INGEST_BODY_BYTES = MAX_UPLOAD_TOTAL_BYTES + 4 * 1024 * 1024
MAX_PHOTO_BODY_BYTES = 2 * MAX_UPLOAD_BYTES + 1024 * 1024
MAX_OTHER_BODY_BYTES = 1024 * 1024
# Routes whose bodies carry photos, by path (the ingest uploads have their own cap).
_INGEST_UPLOADS = re.compile(r"^/(api/v1/ingest/jobs|ui/admin/ingest|ui/ingest)(/.*)?$")
_PHOTO_ROUTES = re.compile(r"^/(api/v1/(cases/\d+/searches|compare|erasures/photo(/.*)?)|ui/.*)$")
_OPEN_API_ROUTES = frozenset({"/api/v1/health"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The request state's entry for (API key, user) as BodyGuard checked them.
_DOOR_CHECKED = "facetrace_door_checked_key"


def door_checked_user(state: MutableMapping[str, Any], api_key: str) -> User | None:
    """The user BodyGuard checked this API key as at the start of this request (state: the request's state, the ASGI
    scope's "state"), or None when it checked no key or another one."""
    checked = state.get(_DOOR_CHECKED)
    # As bytes: compare_digest refuses a str with characters beyond ASCII, which a header may carry. The keys differ
    # when a request repeats the header (the door reads the last, the route the first): the route looks its own up.
    if checked is None or not secrets.compare_digest(checked[0].encode(), api_key.encode()):
        return None
    user: User = checked[1]
    return user


def body_cap(path: str) -> int:
    if _INGEST_UPLOADS.match(path):
        return MAX_INGEST_BODY_BYTES
    if _PHOTO_ROUTES.match(path):
        return MAX_PHOTO_BODY_BYTES
    return MAX_OTHER_BODY_BYTES


class BodyGuard:
    """ASGI middleware; check_key(key) returns the key's user or raises AuthenticationError for an unknown or revoked
    API key, and session_ok(cookie, path) says whether a UI post may go on."""

    def __init__(
        self,
        app: ASGIApp,
        check_key: Callable[[str], User],
        session_ok: Callable[[str | None, str], bool],
    ) -> None:
        self.app = app
        self._check_key = check_key
        self._session_ok = session_ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        cap = body_cap(path)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await _refuse(send, 413, "too_large", f"the request body is {int(declared):,} bytes; at most {cap:,} here")
            return
        refusal = self._unauthenticated(path, headers, scope.setdefault("state", {}))
        if refusal is not None and path.startswith("/ui/"):
            await _redirect(send, f"/ui/login?next={quote(path)}")  # as the UI's own pages send a visitor to sign in
            return
        if refusal is not None:
            await _refuse(send, 401, "unauthenticated", refusal)
            return
        started = False
        refused = False
        received = 0

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    # Answer now and tell the application the client has gone, so it reads no more (an exception
                    # raised here would become the framework's 400 "error parsing the body").
                    refused = True
                    if not started:
                        await _refuse(send, 413, "too_large", f"the request body is larger than {cap:,} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent: whatever the application answers after the disconnect is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, watched_send)

    def _unauthenticated(self, path: str, headers: dict[str, str], state: MutableMapping[str, Any]) -> str | None:
        """Why this request may not send its body, or None (a checked API key's user noted in state)."""
        if path.startswith("/api/") and path not in _OPEN_API_ROUTES:
            key = headers.get("x-api-key") or _bearer(headers.get("authorization", ""))
            if key:
                try:
                    user = self._check_key(key)
                except AuthenticationError as exc:
                    return str(exc)
                state[_DOOR_CHECKED] = (key, user)
                return None
            if headers.get("authorization", "").lower().startswith("basic "):
                return None  # the route checks the password, under the sign-in lockout
            return "authentication required: send an API key (X-API-Key or Bearer) or HTTP Basic"
        if path.startswith("/ui/") and not self._session_ok(_cookie(headers.get("cookie", "")), path):
            return "sign in first (the web UI's forms need a session)"
        return None


def _bearer(value: str) -> str | None:
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def _cookie(header: str) -> str | None:
    from facetrace.server.ui.sessions import SESSION_COOKIE

    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE:
            return value
    return None


async def _redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303, "headers": [(b"location", location.encode("latin-1"))]})
    await send({"type": "http.response.body", "body": b""})


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
