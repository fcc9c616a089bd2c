"""create_app(engine): the FastAPI application, versioned under /api/v1, OpenAPI at /docs; the web UI at /ui."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse

from facetrace.engine import Engine
from facetrace.server.api import audit, cases, erasure, faces, ingest, people, reports, retention, users
from facetrace.server.errors import install_error_handlers
from facetrace.server.jobs import JobQueue
from facetrace.server.limits import BodyGuard
from facetrace.server.ratelimit import Guards
from facetrace.server.reads import ReadLog
from facetrace.server.schemas import ErrorEnvelope, HealthOut
from facetrace.server.ui import admin as admin_ui
from facetrace.server.ui import audit_pages as audit_ui
from facetrace.server.ui import compare as compare_ui
from facetrace.server.ui import jobs_pages as ui_jobs
from facetrace.server.ui import members as members_ui
from facetrace.server.ui import people as people_ui
from facetrace.server.ui import review as review_ui
from facetrace.server.ui import searches as searches_ui
from facetrace.server.ui.common import UI_PREFIX
from facetrace.server.ui.routes import create_ui_app

API_PREFIX = "/api/v1"


def _version() -> str:
    try:
        return version("facetrace")
    except PackageNotFoundError:
        return "unknown"


def create_app(engine: Engine) -> FastAPI:
    """The API over one engine. The caller owns the engine (and closes it)."""
    app = FastAPI(
        title="facetrace",
        version=_version(),
        description="Accountable face search: every search belongs to a case and states its purpose, every view "
        "is audited in a hash chain, candidates are reviewed, and people can be erased.",
        responses={
            401: {"model": ErrorEnvelope, "description": "No valid credentials."},
            403: {"model": ErrorEnvelope, "description": "The user's role does not allow this."},
            429: {
                "model": ErrorEnvelope,
                "description": "Over the key's rate limit, or signing in is locked out; see Retry-After.",
            },
        },
    )
    app.state.engine = engine
    app.state.guards = Guards.from_settings(engine.settings)
    app.state.reads = ReadLog(engine.audit)  # reads audited, repeats folded (server/reads.py); shared with the UI
    install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX)

    @api.get("/health", response_model=HealthOut, tags=["health"])
    def health(request: Request) -> HealthOut:
        """Unauthenticated liveness: the catalog answers."""
        served: Engine = request.app.state.engine
        served.catalog.count_faces(served.model_id)
        return HealthOut(status="ok", model_id=served.model_id, version=_version())

    for module in (users, cases, faces, audit, erasure, ingest, people, reports, retention):
        api.include_router(module.router)
    app.include_router(api)
    # Background ingest jobs: one queue per app, shared by the API and the UI.
    app.state.jobs = JobQueue(engine)
    ui = create_ui_app(engine, app.state.guards, app.state.reads)
    ui.state.jobs = app.state.jobs
    ui.state.erasure_previews = admin_ui.PendingErasures()  # previews an admin has seen, until confirmed
    ui.include_router(admin_ui.router)
    ui.include_router(compare_ui.router)
    ui.include_router(ui_jobs.router)
    ui.include_router(members_ui.router)
    ui.include_router(people_ui.router)
    ui.include_router(review_ui.router)
    ui.include_router(searches_ui.router)
    ui.include_router(audit_ui.router)
    app.mount(UI_PREFIX, ui)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        """A person who opens the server's address lands on the web UI (it sends them to sign in)."""
        return RedirectResponse(f"{UI_PREFIX}/", status_code=307)

    def session_ok(cookie: str | None, path: str) -> bool:
        session = ui.state.signer.load(cookie)
        return session is not None and (session.user is not None or path == f"{UI_PREFIX}/login")

    # Outermost: bodies are bounded and callers known before any body is read (server/limits.py).
    app.add_middleware(BodyGuard, check_key=engine.users.authenticate_key, session_ok=session_ok)
    return app
