"""What the web UI's page modules share: the signed-in visitor and the role check, the CSRF check, rendering a page
with the security headers, redirects inside the UI, and the app state (the engine is server.auth.engine_of, as in the
API).

Every route checks the signed-in user's role (the same roles as the API): signed-out visitors are redirected to the
sign-in page (SignInRequired), a wrong role gets a 403 page. A form whose CSRF token does not match the session gets
the "form expired" page (BadCsrfToken); routes.create_ui_app turns both exceptions into responses.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from facetrace.core.errors import NotFoundError
from facetrace.core.evidence import describe, detail, headline
from facetrace.core.types import User
from facetrace.core.vocabulary import CaseStatus, ReviewDecision, Role, SameImage
from facetrace.governance.users import require_role
from facetrace.server.auth import engine_of, guards_of
from facetrace.server.ui.probes import PendingProbes, ProbeStore
from facetrace.server.ui.sessions import SESSION_COOKIE, Session, SessionSigner, same_token

UI_PREFIX = "/ui"
_IMAGE = re.compile(r"/(faces/\d+/thumbnail|searches/\d+/probe-faces/\d+)$")
TEMPLATES_DIR = Path(__file__).parent / "templates"
READERS = (Role.INVESTIGATOR, Role.REVIEWER, Role.AUDITOR)
VIEWERS = (Role.INVESTIGATOR, Role.REVIEWER)  # may see faces and thumbnails, as in the API

# Pages show faces: never cached, never framed, and no referrer leaks a case URL to a provenance link's site.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class BadCsrfToken(Exception):
    pass


@dataclass(frozen=True)
class Visitor:
    user: User
    session: Session

    @property
    def can_view_faces(self) -> bool:
        return self.user.role in VIEWERS


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]))
    env.filters["when"] = _when
    env.filters["describe"] = describe  # an Evidence's sentence (facetrace.core.evidence: worded there only)
    env.filters["detail"] = detail  # the calibration note behind it
    env.filters["headline"] = headline  # a Strength's badge words
    env.globals.update(
        prefix=UI_PREFIX, Role=Role, CaseStatus=CaseStatus, ReviewDecision=ReviewDecision, SameImage=SameImage
    )
    return env


_templates = _environment()


def signer_of(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.signer
    return signer


def probes_of(request: Request) -> ProbeStore:
    probes: ProbeStore = request.app.state.probes
    return probes


def pending_probes_of(request: Request) -> PendingProbes:
    pending: PendingProbes = request.app.state.pending_probes
    return pending


def session_of(request: Request) -> Session | None:
    return signer_of(request).load(request.cookies.get(SESSION_COOKIE))


def visitor_of(request: Request) -> Visitor | None:
    """The signed-in visitor, or None (no valid session, or their user is gone or deactivated)."""
    session = session_of(request)
    if session is None or session.user is None:
        return None
    try:
        user = engine_of(request).users.user(session.user)
    except NotFoundError:
        return None
    valid = user.active and engine_of(request).users.session_valid(user, session.csrf, session.issued_at)
    return Visitor(user, session) if valid else None


def signed_in(*roles: Role) -> Callable[[Request], Visitor]:
    """A dependency: the signed-in visitor if their role is one of roles (else a redirect to sign in, or 403)."""

    def dependency(request: Request) -> Visitor:
        visitor = visitor_of(request)
        if visitor is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target)
        request.state.user = visitor.user  # who a 403 denied (server/reads.py)
        # The API's budgets, keyed by user as for HTTP Basic: a page and each form spend one request, a search, a
        # comparison or an erasure by photo one search too. The images a page shows (thumbnails, probe crops) are
        # part of that page and spend nothing (each is an audited view of its own).
        if not _IMAGE.search(request.url.path):
            guards_of(request).spend(f"user:{visitor.user.name}", request.method, request.url.path)
        require_role(visitor.user, *roles)
        return visitor

    dependency.__name__ = "signed_in_" + "_or_".join(roles)
    return dependency


def check_csrf(visitor: Visitor | Session | None, sent: str) -> None:
    """The form's token must be the session's (BadCsrfToken otherwise)."""
    session = visitor.session if isinstance(visitor, Visitor) else visitor
    if session is None or not same_token(sent, session.csrf):
        raise BadCsrfToken()


def render(
    request: Request, template: str, visitor: Visitor | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    # The nav's count of candidates awaiting the visitor's review (server/ui/review.py).
    awaiting = engine_of(request).cases.awaiting_count(visitor.user) if visitor and visitor.can_view_faces else 0
    html = _templates.get_template(template).render(
        visitor=visitor, csrf=visitor.session.csrf if visitor else "", awaiting_review=awaiting, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(path: str) -> RedirectResponse:
    """303 to a path inside the UI (after a form: the browser GETs the page)."""
    return RedirectResponse(UI_PREFIX + path, status_code=303, headers={"Cache-Control": "no-store"})


def data_uri(data: bytes) -> str:
    """A JPEG inline in a page (a report, a comparison): kept nowhere but the page."""
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
