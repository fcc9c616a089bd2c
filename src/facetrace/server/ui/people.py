"""The web UI's people view: who is in the gallery, one page per person, and the saved clusters' review (rename,
merge, split, hide) in the browser; an admin starts an erasure from a person's page.

People are the saved clusters (engine.clusters: each one person, named by a reviewer or not) or, before the gallery
is clustered, its labels. Looking at them is a look at faces, so like a search it belongs to an open case the
visitor works in and states a purpose (admins, who belong to no case, state a purpose): every page carries both in
its address and forms, and the engine's audit entries name them (list_people, view_person, view_thumbnail, and each
change's cluster_* entry). The thumbnails a page shows are inline, one audited view for the page.

Who may do what: investigators, reviewers and admins look; reviewers and admins change people (the CLI's
`facetrace clusters` review); admins cluster the gallery and erase. An erasure from here is the erasure screen's
preview (server/ui/admin.py: the faces it would remove, nothing erased until the admin confirms there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from facetrace.core.errors import ConflictError, InvalidRequestError, NotFoundError
from facetrace.core.limits import catalog_id
from facetrace.core.types import CaseContext, FaceRecord
from facetrace.core.vocabulary import AuditAction, CaseStatus, Role
from facetrace.engine.gallery import Person
from facetrace.server.api.common import BrowseCase, BrowsePurpose, IdPath
from facetrace.server.auth import engine_of
from facetrace.server.ui.admin import show_preview
from facetrace.server.ui.common import UI_PREFIX, Visitor, check_csrf, data_uri, redirect, render, signed_in

router = APIRouter()
_lookers = signed_in(Role.INVESTIGATOR, Role.REVIEWER, Role.ADMIN)
_changers = signed_in(Role.REVIEWER, Role.ADMIN)
_admins = signed_in(Role.ADMIN)
PEOPLE_PER_PAGE = 48
FACES_PER_PAGE = 60
MAX_PAGE = 100_000  # a page number (an offset past any gallery, and within SQL's 64-bit range)
# What a form can get wrong: the page again with the message.
_FORM_ERRORS = (InvalidRequestError, NotFoundError, ConflictError)
# Notices after a change (the redirect names one; nothing else is taken from the address into the page).
NOTICES = {
    "renamed": "Renamed.",
    "merged": "Merged: the faces of the other people are now this person's.",
    "split": "Split: the ticked faces are a new person.",
    "hidden": "Hidden: this person is left out of the people grid (shown again with “show hidden people”).",
    "shown": "Shown in the people grid again.",
    "clustered": "The gallery is clustered: each group of faces of one person is now a person here.",
}


@dataclass(frozen=True)
class Browse:
    """The case and purpose the visitor is looking at people under: carried by every link and form of the view."""

    case_id: int | None
    purpose: str

    @classmethod
    def of(cls, context: CaseContext) -> Browse:
        return cls(context.case_id, context.purpose)

    def path(self, path: str, **more: object) -> str:
        """path inside the UI with the case and purpose (and more, where set) in its query."""
        query = {"case_id": self.case_id, "purpose": self.purpose, **more}
        return f"{path}?" + urlencode({key: value for key, value in query.items() if value not in (None, False, "")})


def _context(request: Request, visitor: Visitor, case_id: int | str | None, purpose: str | None) -> CaseContext:
    """The visitor's case (an open one they work in) and purpose, as the API's people routes ask; 422 without."""
    if isinstance(case_id, str):
        case_id = catalog_id(case_id, "a case id") if case_id.strip() else None
    return engine_of(request).cases.browsing(visitor.user, case_id, purpose)


def _may_change(visitor: Visitor) -> bool:
    return visitor.user.role in (Role.REVIEWER, Role.ADMIN)


def _inline(
    request: Request, visitor: Visitor, faces: list[FaceRecord], context: CaseContext, target: str
) -> dict[int, str]:
    """The faces' thumbnails as data URIs: one audited view of them all (target names the page)."""
    face_ids = [f.face_id for f in faces]
    shown = engine_of(request).gallery.show_faces(visitor.user, face_ids, context, AuditAction.VIEW_THUMBNAIL, target)
    return {face_id: data_uri(data) for face_id, data in shown.thumbnails.items()}


# -- the grid ------------------------------------------------------------------------------------------------------


@router.get("/people", response_class=HTMLResponse)
def people_page(
    request: Request,
    visitor: Annotated[Visitor, Depends(_lookers)],
    case_id: BrowseCase = None,
    purpose: BrowsePurpose = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    hidden: bool = False,
    singles: bool = False,
    notice: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    """Without a purpose (and, but for admins, a case): the form that asks for them. With them: the grid, of the
    people with two faces or more (and the named ones) unless singles, and without the hidden ones unless hidden."""
    if not (purpose or "").strip() or (case_id is None and visitor.user.role != Role.ADMIN):
        return _start_page(request, visitor, case_id)
    context = _context(request, visitor, case_id, purpose)
    return _grid_page(request, visitor, context, page, hidden=hidden, singles=singles, notice=NOTICES.get(notice))


def _grid_page(
    request: Request,
    visitor: Visitor,
    context: CaseContext,
    page: int = 1,
    *,
    hidden: bool = False,
    singles: bool = False,
    status_code: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    grid = engine_of(request).gallery.people_grid(
        visitor.user,
        context,
        (page - 1) * PEOPLE_PER_PAGE,
        PEOPLE_PER_PAGE,
        include_hidden=hidden,
        min_faces=1 if singles else 2,
    )
    covers = [p.cover for p in grid.people if p.cover is not None]
    return render(
        request,
        "people.html",
        visitor,
        status_code=status_code,
        browse=Browse.of(context),
        grid=grid,
        thumbnails=_inline(request, visitor, covers, context, "people"),
        page=page,
        pages=max(1, -(-grid.total // PEOPLE_PER_PAGE)),
        show_hidden=hidden,
        show_singles=singles,
        may_change=_may_change(visitor),
        notice=notice,
        error=error,
    )


def _start_page(
    request: Request, visitor: Visitor, case_id: int | None, status_code: int = 200, error: str | None = None
) -> HTMLResponse:
    cases = engine_of(request).cases
    open_cases = [
        c
        for c in cases.cases_for(visitor.user)
        if c.status == CaseStatus.OPEN and (visitor.user.role == Role.ADMIN or cases.works_in(visitor.user, c))
    ]
    return render(
        request,
        "people.html",
        visitor,
        status_code=status_code,
        browse=None,
        cases=sorted(open_cases, key=lambda c: c.case_id, reverse=True),
        chosen_case=case_id,
        error=error,
    )


@router.post("/people/merge", response_model=None)
def merge_people(
    request: Request,
    visitor: Annotated[Visitor, Depends(_changers)],
    cluster_id: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Merge the people ticked on the grid into one: the named one (two different names are refused: rename
    first), else the largest. Each merge is one audited cluster_merge."""
    check_csrf(visitor, csrf_token)
    context = _context(request, visitor, case_id, purpose)
    browse = Browse.of(context)
    clusters = engine_of(request).clusters
    try:
        ids = list(dict.fromkeys(catalog_id(value, "a person's cluster id") for value in cluster_id or []))
        if len(ids) < 2:
            raise InvalidRequestError("tick two or more people to merge")
        chosen = [clusters.show(i)[0] for i in ids]
        names = sorted({c.name for c in chosen if c.name})
        if len(names) > 1:
            raise InvalidRequestError(
                f"these people have different names ({', '.join(names)}): rename or untick one first"
            )
        kept = max(chosen, key=lambda c: (c.name is not None, len(c.face_ids), -c.cluster_id))
        for other in chosen:
            if other.cluster_id != kept.cluster_id:
                clusters.merge(kept.cluster_id, other.cluster_id, reason, actor=visitor.user.name, context=context)
    except _FORM_ERRORS as exc:
        return _grid_page(request, visitor, context, status_code=422, error=str(exc))
    return redirect(browse.path(f"/people/clusters/{kept.cluster_id}", notice="merged"))


@router.post("/people/cluster", response_model=None)
def cluster_gallery(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    case_id: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """`facetrace cluster --save` from the browser: the faces in no cluster yet are placed (audited cluster_save)."""
    check_csrf(visitor, csrf_token)
    browse = Browse.of(_context(request, visitor, case_id, purpose))
    engine_of(request).clusters.save(actor=visitor.user.name)
    return redirect(browse.path("/people", notice="clustered"))


# -- one person ----------------------------------------------------------------------------------------------------


def _person_page(
    request: Request,
    visitor: Visitor,
    context: CaseContext,
    person: Person,
    faces: list[FaceRecord],
    page: int,
    *,
    events: list[object] | None = None,
    clusters_of: dict[int, int] | None = None,
    status_code: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    pages = max(1, -(-len(faces) // FACES_PER_PAGE))
    page = min(page, pages)
    shown = faces[(page - 1) * FACES_PER_PAGE : page * FACES_PER_PAGE]
    target = f"cluster:{person.cluster_id}" if person.cluster_id is not None else f"person:{person.name}"
    photos: dict[int, list[FaceRecord]] = {}
    for face in faces:
        photos.setdefault(face.asset_id, []).append(face)
    return render(
        request,
        "person.html",
        visitor,
        status_code=status_code,
        browse=Browse.of(context),
        person=person,
        faces=shown,
        face_total=len(faces),
        photos=list(photos.values()),
        thumbnails=_inline(request, visitor, shown, context, target),
        events=events or [],
        clusters_of=clusters_of or {},
        page=page,
        pages=pages,
        request_path="/people/label" if person.cluster_id is None else f"/people/clusters/{person.cluster_id}",
        label_arg=person.name if person.cluster_id is None else None,
        may_change=_may_change(visitor) and person.cluster_id is not None,
        may_erase=visitor.user.role == Role.ADMIN,
        error=error,
        notice=notice,
    )


def _cluster_page(
    request: Request,
    visitor: Visitor,
    context: CaseContext,
    cluster_id: int,
    page: int = 1,
    status_code: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    person, faces, events = engine_of(request).gallery.cluster_person(visitor.user, cluster_id, context)
    return _person_page(
        request,
        visitor,
        context,
        person,
        faces,
        page,
        events=list(events),
        status_code=status_code,
        error=error,
        notice=notice,
    )


def _label_page(
    request: Request,
    visitor: Visitor,
    context: CaseContext,
    label: str,
    page: int = 1,
    status_code: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    gallery = engine_of(request).gallery
    if "\x00" in label:
        raise NotFoundError("no face is labelled with a NUL character")
    faces = gallery.person_faces(visitor.user, label, context)
    labelled = Person(None, label, len(faces), None)
    clusters_of = gallery.clusters_of([f.face_id for f in faces])
    return _person_page(
        request,
        visitor,
        context,
        labelled,
        faces,
        page,
        clusters_of=clusters_of,
        status_code=status_code,
        error=error,
    )


@router.get("/people/clusters/{cluster_id}", response_class=HTMLResponse)
def cluster_page(
    cluster_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_lookers)],
    case_id: BrowseCase = None,
    purpose: BrowsePurpose = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    notice: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    context = _context(request, visitor, case_id, purpose)
    return _cluster_page(request, visitor, context, cluster_id, page, notice=NOTICES.get(notice))


@router.get("/people/label", response_class=HTMLResponse)
def label_page(
    request: Request,
    visitor: Annotated[Visitor, Depends(_lookers)],
    label: Annotated[str, Query(min_length=1, max_length=2000)],
    case_id: BrowseCase = None,
    purpose: BrowsePurpose = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    """The faces carrying a label (before clustering, the people are the labels)."""
    return _label_page(request, visitor, _context(request, visitor, case_id, purpose), label, page)


# -- changes to a saved cluster: each an audited cluster event, made under the case and purpose ---------------------


def _change(
    request: Request,
    visitor: Visitor,
    cluster_id: int,
    case_id: str,
    purpose: str,
    csrf_token: str,
    notice: str,
    make: Callable[[CaseContext], int],
) -> Response:
    """Every change form: the CSRF check, the context, the change (the page again with the form's error, 422), then
    the person's page (the change may send the visitor to another cluster: make returns its id)."""
    check_csrf(visitor, csrf_token)
    context = _context(request, visitor, case_id, purpose)
    try:
        landing = make(context)
    except _FORM_ERRORS as exc:
        return _cluster_page(request, visitor, context, cluster_id, status_code=422, error=str(exc))
    return redirect(Browse.of(context).path(f"/people/clusters/{landing}", notice=notice))


@router.post("/people/clusters/{cluster_id}/rename", response_model=None)
def rename_person(
    cluster_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_changers)],
    name: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Name the person (an empty name clears it)."""

    def make(context: CaseContext) -> int:
        clusters = engine_of(request).clusters
        clusters.rename(cluster_id, name.strip() or None, reason, actor=visitor.user.name, context=context)
        return cluster_id

    return _change(request, visitor, cluster_id, case_id, purpose, csrf_token, "renamed", make)


@router.post("/people/clusters/{cluster_id}/merge", response_model=None)
def merge_into_person(
    cluster_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_changers)],
    other: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Another person (by cluster number) is this one: their faces join this cluster, which keeps its name."""

    def make(context: CaseContext) -> int:
        absorbed = catalog_id(other, "the other person's cluster number")
        engine_of(request).clusters.merge(cluster_id, absorbed, reason, actor=visitor.user.name, context=context)
        return cluster_id

    return _change(request, visitor, cluster_id, case_id, purpose, csrf_token, "merged", make)


@router.post("/people/clusters/{cluster_id}/split", response_model=None)
def split_person(
    cluster_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_changers)],
    face_id: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """The ticked faces are someone else: they leave for a new cluster (the page of the new person follows)."""

    def make(context: CaseContext) -> int:
        faces = _ticked(face_id)
        event = engine_of(request).clusters.split(cluster_id, faces, reason, actor=visitor.user.name, context=context)
        return event.other_cluster_id if event.other_cluster_id is not None else cluster_id

    return _change(request, visitor, cluster_id, case_id, purpose, csrf_token, "split", make)


@router.post("/people/clusters/{cluster_id}/hide", response_model=None)
def hide_person(
    cluster_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_changers)],
    hidden: Annotated[str, Form()] = "1",
    reason: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Leave the person out of the grid (hidden=1) or show them again (hidden=0)."""
    hide = hidden != "0"

    def make(context: CaseContext) -> int:
        engine_of(request).clusters.hide(cluster_id, hide, reason, actor=visitor.user.name, context=context)
        return cluster_id

    return _change(request, visitor, cluster_id, case_id, purpose, csrf_token, "hidden" if hide else "shown", make)


def _ticked(values: list[str] | None) -> list[int]:
    faces = [catalog_id(value, "a face id") for value in values or []]
    if not faces:
        raise InvalidRequestError("tick the faces first")
    return faces


# -- erasure: the erasure screen's preview, started from a person ------------------------------------------------


@router.post("/people/clusters/{cluster_id}/erase", response_model=None)
def erase_cluster(
    cluster_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    face_id: Annotated[list[str] | None, Form()] = None,
    everyone: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """The preview of erasing this person (every face of the cluster: everyone=1) or the ticked faces; nothing is
    erased until the admin confirms on the preview."""
    check_csrf(visitor, csrf_token)
    context = _context(request, visitor, case_id, purpose)
    engine = engine_of(request)
    try:
        faces = list(engine.clusters.show(cluster_id)[0].face_ids) if everyone else _ticked(face_id)
        preview = engine.erasure.preview_faces(visitor.user.name, faces)
    except _FORM_ERRORS as exc:
        return _cluster_page(request, visitor, context, cluster_id, status_code=422, error=str(exc))
    back = UI_PREFIX + Browse.of(context).path(f"/people/clusters/{cluster_id}")
    return show_preview(request, visitor, preview, reason, back=back)


@router.post("/people/label/erase", response_model=None)
def erase_label(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    label: Annotated[str, Form()] = "",
    face_id: Annotated[list[str] | None, Form()] = None,
    everyone: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """The preview of erasing a labelled person (every face shown with the label: everyone=1) or the ticked
    faces."""
    check_csrf(visitor, csrf_token)
    context = _context(request, visitor, case_id, purpose)
    erasure = engine_of(request).erasure
    try:
        if everyone:
            preview = erasure.preview_person(visitor.user.name, label)
        else:
            preview = erasure.preview_faces(visitor.user.name, _ticked(face_id))
    except _FORM_ERRORS as exc:
        try:
            return _label_page(request, visitor, context, label, status_code=422, error=str(exc))
        except NotFoundError:
            raise exc from None  # no such label to show again: the error page says what was wrong
    back = UI_PREFIX + Browse.of(context).path("/people/label", label=label)
    return show_preview(request, visitor, preview, reason, back=back)
