"""Signed session cookies for the web UI, with the stdlib's HMAC.

A cookie holds {user, csrf token, issued at} signed with a random secret kept in the data directory (created on
first use, mode 0600): the server keeps no session table, and restarting it does not sign everyone out. Rotating the
secret file signs everyone out. A signed-out visitor still gets a cookie with a CSRF token, so the sign-in form is
protected too; signing in issues a new token (no session fixation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SESSION_COOKIE = "facetrace_session"
SESSION_MAX_AGE_S = 12 * 3600
SECRET_FILE_NAME = "ui_session_secret"
_SECRET_BYTES = 32


@dataclass(frozen=True)
class Session:
    user: str | None  # None: signed out
    csrf: str
    issued_at: float

    @classmethod
    def new(cls, user: str | None) -> Session:
        return cls(user=user, csrf=secrets.token_urlsafe(24), issued_at=time.time())


def load_secret(data_dir: Path) -> bytes:
    """The data directory's session secret, created (atomically, owner-only) the first time."""
    path = data_dir / SECRET_FILE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) < _SECRET_BYTES:
            raise ValueError(f"{path} is shorter than {_SECRET_BYTES} bytes; delete it to make a new one") from None
        return secret
    secret = secrets.token_bytes(_SECRET_BYTES)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


class SessionSigner:
    def __init__(self, secret: bytes, max_age_s: float = SESSION_MAX_AGE_S) -> None:
        self._secret = secret
        self._max_age_s = max_age_s

    def dump(self, session: Session) -> str:
        payload = json.dumps({"u": session.user, "c": session.csrf, "t": session.issued_at}, separators=(",", ":"))
        body = base64.urlsafe_b64encode(payload.encode("utf-8")).decode("ascii").rstrip("=")
        return f"{body}.{self._sign(body)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None when it is missing, forged, malformed or expired."""
        if not cookie or "." not in cookie:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(user=data["u"], csrf=str(data["c"]), issued_at=float(data["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.user is not None and not isinstance(session.user, str):
            return None
        if time.time() - session.issued_at > self._max_age_s:
            return None
        return session

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def same_token(sent: str | None, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(str(sent), expected)
