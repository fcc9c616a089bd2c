"""The web UI's routes: sign in, cases, searches with their candidates, reviews, side-by-side comparison, the case
report; and create_ui_app, which mounts them with the other page modules' routers at /ui as its
own app, so its errors are pages rather than JSON and it stays out of the API's OpenAPI document.

What the page modules share (the visitor and role check, CSRF, rendering) is in server/ui/common.py. Every face,
thumbnail and probe crop shown, and every report, is written to the audit log through the engine.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from facetrace.core.errors import (
    AuthenticationError,
    FacetraceError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)
from facetrace.core.limits import MAX_PASSWORD, catalog_id
from facetrace.core.types import MAX_TOP_K, Case, CaseContext, FaceRecord, Review, SearchRecord, StoredHit, Strength
from facetrace.core.vocabulary import AuditAction, IndependentReview, MinStrength, PhotoRole, Role, SameImage
from facetrace.engine import Engine
from facetrace.server.api.common import BrowseCase, BrowsePurpose, IdPath, read_upload
from facetrace.server.api.reports import ReportInclude
from facetrace.server.auth import client_address, engine_of, guards_of, password_hasher
from facetrace.server.case_report import SCORES_MEANING, SECTIONS, gather_report
from facetrace.server.errors import error_headers, status_for
from facetrace.server.hit_badges import HitBadges
from facetrace.server.ratelimit import Guards, password_sign_in
from facetrace.server.reads import ReadLog, audited_read, record_denial
from facetrace.server.schemas import MAX_ID
from facetrace.server.ui.common import (
    READERS,
    UI_PREFIX,
    VIEWERS,
    BadCsrfToken,
    SignInRequired,
    Visitor,
    check_csrf,
    data_uri,
    pending_probes_of,
    probes_of,
    redirect,
    render,
    session_of,
    signed_in,
    signer_of,
    visitor_of,
)
from facetrace.server.ui.probes import PendingProbes, ProbeFace, ProbeStore
from facetrace.server.ui.sessions import SESSION_COOKIE, SESSION_MAX_AGE_S, Session, SessionSigner, load_secret

log = logging.getLogger(__name__)

# Sign-in form fields: a user name is at most 64 characters (governance/users.py), so a longer one is refused
# before any password check; a CSRF token is 32 characters; next= is a path inside the UI.
MAX_LOGIN_NAME = 256
MAX_TOKEN = 256
MAX_NEXT = 2_048
MAX_FACES_PICKED = 1_000  # probe faces picked in one search (a photo has far fewer)


@dataclass
class Candidate(HitBadges):
    hit: StoredHit
    face: FaceRecord | None  # None: not viewable by this role, or erased since
    reviews: list[Review] = field(default_factory=list)

    @property
    def bystander(self) -> bool:
        return self.face is not None and self.face.photo_role is PhotoRole.BYSTANDER


@dataclass
class ProbeGroup:
    face_index: int | None
    probe: ProbeFace | None
    candidates: list[Candidate]
    hidden: int = 0  # candidates below the page's strength filter

    @property
    def leads(self) -> list[Candidate]:
        """Strong, then moderate leads (and scores without a rate: uncalibrated), each best first; not the probe's
        own photo."""
        order = {Strength.STRONG: 0, Strength.MODERATE: 1, Strength.UNCALIBRATED: 1}
        leads = [c for c in self.candidates if c.same_image is SameImage.NONE and c.strength is not Strength.WEAK]
        return sorted(leads, key=lambda c: (order[c.strength], c.hit.rank))

    @property
    def own_photo(self) -> list[Candidate]:
        """Faces of the probe's own photo, or of a copy of it: shown apart, since they are no evidence."""
        return [c for c in self.candidates if c.same_image is not SameImage.NONE]

    @property
    def weak(self) -> list[Candidate]:
        return [c for c in self.candidates if c.same_image is SameImage.NONE and c.strength is Strength.WEAK]


def _set_session(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        signer_of(request).dump(session),
        max_age=SESSION_MAX_AGE_S,
        path=UI_PREFIX,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def _safe_next(next_path: str) -> str:
    """Only paths inside the UI: never another site (open redirect)."""
    if next_path.startswith(UI_PREFIX + "/") and not next_path.startswith("//") and "\\" not in next_path:
        return next_path
    return UI_PREFIX + "/"


def _jpeg(data: bytes) -> Response:
    return Response(content=data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


router = APIRouter()
_readers = signed_in(*READERS)
_viewers = signed_in(*VIEWERS)
_anyone = signed_in(Role.ADMIN, Role.INVESTIGATOR, Role.REVIEWER, Role.AUDITOR)


# -- signing in and out -----------------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "") -> HTMLResponse:
    session = session_of(request) or Session.new(None)
    response = render(request, "login.html", None, csrf_token=session.csrf, next=_safe_next(next), error=None)
    _set_session(request, response, session)
    return response


@router.post("/login", response_model=None)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=MAX_LOGIN_NAME)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    csrf_token: Annotated[str, Form(max_length=MAX_TOKEN)] = "",
    next: Annotated[str, Form(max_length=MAX_NEXT)] = "",
) -> Response:
    check_csrf(session_of(request), csrf_token)
    engine = engine_of(request)
    address = client_address(request)
    try:
        user = password_sign_in(
            engine, guards_of(request), username.strip(), password, password_hasher(), address, "ui"
        )
    except (AuthenticationError, RateLimitedError) as exc:
        locked = isinstance(exc, RateLimitedError)
        session = session_of(request) or Session.new(None)
        page = render(
            request,
            "login.html",
            None,
            status_code=429 if locked else 401,
            csrf_token=session.csrf,
            next=_safe_next(next),
            error=f"Signing in is locked: {exc}." if locked else "Wrong user name or password.",
        )
        if isinstance(exc, RateLimitedError):  # locked
            page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    engine.audit.record(user.name, AuditAction.SIGN_IN, f"user:{user.name}", address=address, channel="ui")
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_session(request, response, Session.new(user.name))
    return response


@router.post("/logout")
def logout(
    request: Request, visitor: Annotated[Visitor, Depends(_anyone)], csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(visitor, csrf_token)
    # Ended on the server: a copy of the cookie (another tab, a stolen one) stops working too.
    engine_of(request).users.end_session(visitor.session.csrf, SESSION_MAX_AGE_S)
    response = redirect("/login")
    _set_session(request, response, Session.new(None))
    return response


@router.get("/")
def home(visitor: Annotated[Visitor, Depends(_anyone)]) -> Response:
    return redirect("/audit" if visitor.user.role == Role.ADMIN else "/cases")


# -- cases ---------------------------------------------------------------------------------------------------------


def _cases_page(request: Request, visitor: Visitor, status_code: int = 200, error: str | None = None) -> HTMLResponse:
    engine = engine_of(request)
    cases = sorted(engine.cases.cases_for(visitor.user), key=lambda c: c.case_id, reverse=True)
    optional = engine.cases.independent_review == IndependentReview.OPTIONAL
    return render(
        request, "cases.html", visitor, status_code=status_code, cases=cases, error=error, four_eyes_optional=optional
    )


@router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, visitor: Annotated[Visitor, Depends(_readers)]) -> HTMLResponse:
    page = _cases_page(request, visitor)
    audited_read(request, visitor.user, AuditAction.LIST_CASES, "cases")
    return page


@router.post("/cases", response_model=None)
def open_case(
    request: Request,
    visitor: Annotated[Visitor, Depends(signed_in(Role.INVESTIGATOR))],
    title: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    legal_basis: Annotated[str, Form()] = "",
    requires_independent_review: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(visitor, csrf_token)
    cases = engine_of(request).cases
    # The form offers the four-eyes box only when the policy leaves it optional; otherwise the field is ignored.
    optional = cases.independent_review == IndependentReview.OPTIONAL
    try:
        case = cases.open_case(
            visitor.user,
            title,
            purpose,
            legal_basis,
            requires_independent_review=bool(requires_independent_review) if optional else None,
        )
    except InvalidRequestError as exc:
        return _cases_page(request, visitor, status_code=422, error=str(exc))
    return redirect(f"/cases/{case.case_id}")


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(case_id: IdPath, request: Request, visitor: Annotated[Visitor, Depends(_readers)]) -> HTMLResponse:
    cases = engine_of(request).cases
    case = _effective(request, cases.case_for(visitor.user, case_id))
    searches = sorted(cases.searches(case_id), key=lambda s: s.search_id, reverse=True)
    audited_read(request, visitor.user, AuditAction.VIEW_CASE, f"case:{case_id}")
    return render(
        request,
        "case.html",
        visitor,
        case=case,
        members=cases.members(case_id),
        works_in=cases.works_in(visitor.user, case),
        searches=searches,
        error=None,
    )


@router.post("/cases/{case_id}/searches", response_model=None)
def search(
    case_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(signed_in(Role.INVESTIGATOR))],
    probe: Annotated[UploadFile | None, File()] = None,
    probe_token: Annotated[str, Form(max_length=MAX_TOKEN)] = "",
    faces: Annotated[list[str] | None, Form(max_length=MAX_FACES_PICKED)] = None,
    purpose: Annotated[str, Form()] = "",
    top_k: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """The same governed search as the API's: purpose required, stored with the case, audited. An uploaded photo
    with one face is searched at once; one with several is kept and shown (the probe overview) for the investigator
    to pick the faces to search, which come back here with its probe_token. Only the picked faces are searched."""
    check_csrf(visitor, csrf_token)
    engine = engine_of(request)
    limit = int(top_k) if top_k.strip().isdigit() and 0 < int(top_k) <= MAX_TOP_K else None
    if probe_token:
        kept = pending_probes_of(request)
        pending, data = kept.get(probe_token, visitor.user.name, case_id)
        picked = sorted({catalog_id(face, "a probe face's number") for face in faces or []})
        if not picked:
            raise InvalidRequestError("pick at least one face of the probe photo to search")
        record, results = engine.search.in_case(
            visitor.user,
            case_id,
            purpose,
            data,
            pending.name,
            top_k=limit,
            faces=picked,
            analyzed=kept.analyzed(probe_token),
        )
        kept.discard(probe_token)
    else:
        if probe is None:
            raise InvalidRequestError("choose a probe photo to upload")
        data, name = read_upload(probe, "the probe photo")
        image = engine.search.analyze_in_case(visitor.user, case_id, purpose, data, name)
        if len(image.faces) > 1:
            upload = pending_probes_of(request).add(visitor.user.name, case_id, data, image, purpose, limit)
            return redirect(f"/cases/{case_id}/probes/{upload.token}")
        record, results = engine.search.in_case(visitor.user, case_id, purpose, data, name, top_k=limit, analyzed=image)
    probes_of(request).save(record.search_id, data, record.probe_name, results)
    return redirect(f"/searches/{record.search_id}")


# -- a search's candidates, reviews and comparison -----------------------------------------------------------------


def _effective(request: Request, case: Case) -> Case:
    """The case with the review rule that applies (the policy's when it requires independent review)."""
    required = engine_of(request).cases.independent_review_required(case)
    return dataclasses.replace(case, requires_independent_review=required)


def _view_faces(engine: Engine, visitor: Visitor, face_ids: list[int], context: CaseContext) -> dict[int, FaceRecord]:
    """Each face shown is one audited view under the case; auditors see scores and verdicts, not faces (as in the
    API)."""
    if not visitor.can_view_faces:
        return {}
    shown: dict[int, FaceRecord] = {}
    for face_id in face_ids:
        try:
            shown[face_id] = engine.gallery.face(visitor.user, face_id, context)
        except NotFoundError:
            continue  # erased since the search: its stored hit stays, the face is gone
    return shown


def _groups(
    request: Request,
    visitor: Visitor,
    record: SearchRecord,
    reviews: list[Review],
    context: CaseContext,
    keep: Callable[[StoredHit], bool] = lambda _hit: True,
) -> list[ProbeGroup]:
    """The search's candidates by probe face; hits that keep refuses are counted (hidden), not viewed."""
    probes = probes_of(request).faces(record.search_id)
    kept = [hit for hit in record.hits if keep(hit)]
    faces = _view_faces(engine_of(request), visitor, sorted({hit.face_id for hit in kept}), context)
    groups: dict[int | None, ProbeGroup] = {}
    for hit in sorted(record.hits, key=lambda h: (h.probe_face_index or 0, h.rank)):
        probe = probes.get(hit.probe_face_index) if hit.probe_face_index is not None else None
        group = groups.setdefault(hit.probe_face_index, ProbeGroup(hit.probe_face_index, probe, []))
        if not keep(hit):
            group.hidden += 1
            continue
        group.candidates.append(
            Candidate(hit, faces.get(hit.face_id), [r for r in reviews if r.face_id == hit.face_id])
        )
    return list(groups.values())


def _may_review(request: Request, visitor: Visitor, case: Case, record: SearchRecord) -> bool:
    cases = engine_of(request).cases
    if visitor.user.role not in (Role.REVIEWER, Role.INVESTIGATOR) or not cases.works_in(visitor.user, case):
        return False
    return not (cases.independent_review_required(case) and visitor.user.name == record.user)


def _reviewing(request: Request, visitor: Visitor, search_id: int) -> tuple[SearchRecord, Case, CaseContext]:
    """The search, its case (404 unless the visitor may see it) and the context its candidates are viewed under."""
    cases = engine_of(request).cases
    record, case = cases.search_for(visitor.user, search_id)
    return record, case, cases.reading(visitor.user, case.case_id, f"review of search {search_id}")


@router.get("/searches/{search_id}", response_class=HTMLResponse)
def search_page(
    search_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_readers)],
    min_strength: Annotated[MinStrength, Query()] = MinStrength.WEAK,
) -> HTMLResponse:
    """The candidates of each probe face: leads first, weak hits folded away, those below min_strength left out
    (not viewed, so not audited as views)."""
    record, case, context = _reviewing(request, visitor, search_id)
    reviews = engine_of(request).cases.reviews(search_id)
    groups = _groups(request, visitor, record, reviews, context, lambda hit: min_strength.keeps(hit.evidence.strength))
    audited_read(request, visitor.user, AuditAction.VIEW_SEARCH, f"search:{search_id}", case_id=case.case_id)
    return render(
        request,
        "search.html",
        visitor,
        case=_effective(request, case),
        search=record,
        groups=groups,
        hidden=sum(group.hidden for group in groups),
        min_strength=min_strength,
        strength_filters=list(MinStrength),
        may_review=_may_review(request, visitor, case, record),
    )


@router.post("/searches/{search_id}/reviews", response_model=None)
def review(
    search_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(signed_in(Role.REVIEWER, Role.INVESTIGATOR))],
    face_id: Annotated[str, Form()] = "",
    decision: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Confirm or reject a candidate; the four-eyes rule is the case service's, as for the API."""
    check_csrf(visitor, csrf_token)
    candidate = catalog_id(face_id, "a review's candidate face id")
    engine_of(request).cases.review(visitor.user, search_id, candidate, decision, note)
    return redirect(f"/searches/{search_id}#face-{candidate}")


@router.get("/searches/{search_id}/compare/{face_id}", response_class=HTMLResponse)
def compare_page(
    search_id: IdPath, face_id: IdPath, request: Request, visitor: Annotated[Visitor, Depends(_viewers)]
) -> HTMLResponse:
    cases = engine_of(request).cases
    record, case, context = _reviewing(request, visitor, search_id)
    hits = [hit for hit in record.hits if hit.face_id == face_id]
    if not hits:
        raise NotFoundError(f"face {face_id} is not a candidate of search {search_id}")
    hit = hits[0]
    probes = probes_of(request).faces(search_id)
    probe = probes.get(hit.probe_face_index) if hit.probe_face_index is not None else None
    face = _view_faces(engine_of(request), visitor, [face_id], context).get(face_id)
    reviews = [r for r in cases.reviews(search_id) if r.face_id == face_id]
    candidate = Candidate(hit, face, reviews)
    audited_read(request, visitor.user, AuditAction.VIEW_SEARCH, f"search:{search_id}", case_id=case.case_id)
    return render(
        request,
        "compare.html",
        visitor,
        case=_effective(request, case),
        search=record,
        probe=probe,
        candidate=candidate,
        may_review=_may_review(request, visitor, case, record),
    )


@router.get("/searches/{search_id}/probe-faces/{face_index}")
def probe_crop(
    search_id: IdPath, face_index: IdPath, request: Request, visitor: Annotated[Visitor, Depends(_viewers)]
) -> Response:
    engine = engine_of(request)
    engine.cases.search_for(visitor.user, search_id)
    data = probes_of(request).crop(search_id, face_index)
    if data is None:
        raise NotFoundError(f"search {search_id} kept no crop of probe face {face_index}")
    engine.audit.record(visitor.user.name, AuditAction.VIEW_PROBE, f"search:{search_id}", face_index=face_index)
    return _jpeg(data)


@router.get("/faces/{face_id}/thumbnail")
def thumbnail(
    face_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_viewers)],
    search_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    case_id: BrowseCase = None,
    purpose: BrowsePurpose = None,
) -> Response:
    """A face's thumbnail: a candidate of a search the visitor may see (search_id, as the search pages link it), or
    any face within a case the visitor works in and for a purpose (case_id and purpose), as the API's."""
    engine = engine_of(request)
    if search_id is not None:
        record, _case, context = _reviewing(request, visitor, search_id)
        if face_id not in {hit.face_id for hit in record.hits}:
            raise NotFoundError(f"face {face_id} is not a candidate of search {search_id}")
    else:
        context = engine.cases.browsing(visitor.user, case_id, purpose)
    return _jpeg(engine.gallery.thumbnail(visitor.user, face_id, context))


# -- the case report -----------------------------------------------------------------------------------------------


@router.get("/cases/{case_id}/report", response_class=HTMLResponse)
def report(
    case_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_viewers)],
    download: bool = False,
    include: ReportInclude = None,
) -> HTMLResponse:
    """A self-contained printable page (images inline) that leads with the confirmed identifications and their
    evidence, then counts the rejected candidates and lists the unreviewed ones if asked (include=unreviewed).
    Viewing it is one audited export entry (server/case_report.py)."""
    report = gather_report(
        engine_of(request), visitor.user, probes_of(request), case_id, "html", include_unreviewed=bool(include)
    )
    response = render(
        request,
        "report.html",
        visitor,
        report=report,
        sections=SECTIONS,
        scores_meaning=SCORES_MEANING,
        data_uri=data_uri,
    )
    if download:
        response.headers["Content-Disposition"] = f'attachment; filename="facetrace-case-{case_id}-report.html"'
    return response


# -- the app -------------------------------------------------------------------------------------------------------


def _error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", visitor_of(request), status_code=status_code, title=title, message=message)


def create_ui_app(engine: Engine, guards: Guards | None = None, reads: ReadLog | None = None) -> FastAPI:
    """The UI over one engine, sharing the API's engine lock and sign-in guard; mount it at UI_PREFIX."""
    ui = FastAPI(title="facetrace UI", openapi_url=None, docs_url=None, redoc_url=None)
    ui.state.engine = engine
    ui.state.guards = guards or Guards.from_settings(engine.settings)
    ui.state.signer = SessionSigner(load_secret(engine.settings.data))
    ui.state.probes = ProbeStore(engine.settings.data, engine.settings.max_image_pixels)
    ui.state.pending_probes = PendingProbes(engine.settings.data)
    ui.state.reads = reads or ReadLog(engine.audit)

    @ui.exception_handler(SignInRequired)
    async def sign_in_required(_request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"{UI_PREFIX}/login?next={quote(exc.next_path)}", status_code=303)

    @ui.exception_handler(BadCsrfToken)
    async def bad_csrf(request: Request, _exc: BadCsrfToken) -> Response:
        return _error_page(
            request,
            403,
            "Form expired",
            "The form's security token did not match your session. Go back, reload the page and try again.",
        )

    @ui.exception_handler(PermissionDeniedError)
    async def forbidden(request: Request, exc: PermissionDeniedError) -> Response:
        record_denial(request, engine.audit, str(exc))
        return _error_page(request, 403, "Not allowed", str(exc))

    @ui.exception_handler(FacetraceError)
    async def facetrace_error(request: Request, exc: FacetraceError) -> Response:
        status_code, code = status_for(exc)
        if status_code >= 500:
            log.error("UI request failed: %s", exc)
        page = _error_page(request, status_code, code.replace("_", " ").capitalize(), str(exc))
        page.headers.update(error_headers(exc) or {})
        return page

    @ui.exception_handler(RequestValidationError)
    async def invalid(request: Request, _exc: RequestValidationError) -> Response:
        return _error_page(request, 422, "Invalid request", "The address or form is not valid.")

    @ui.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error_page(request, exc.status_code, str(exc.detail), str(exc.detail))

    @ui.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected UI error", exc_info=exc)
        return _error_page(
            request, 500, "Something went wrong", "An unexpected error occurred; the server log has details."
        )

    ui.include_router(router)
    return ui
