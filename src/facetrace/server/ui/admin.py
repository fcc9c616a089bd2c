"""The web UI's administration screens: users and their API keys, and erasure (preview, then confirm) with its
receipts.

The same engine calls as the API's /users and /erasures routes, so the same rules and audit entries hold. Admins
change things; auditors may read the same pages (users, keys, receipts) without the forms, as in the API. A new
user's or new key's secret is shown once, on the page that answers the form (never in a redirect's address), and
only its prefix afterwards.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from facetrace.core.errors import (
    ConflictError,
    FaceSelectionError,
    ImageDecodeError,
    InvalidRequestError,
    NoFaceError,
    NotFoundError,
)
from facetrace.core.limits import catalog_id
from facetrace.core.types import ErasurePreview
from facetrace.core.vocabulary import AuditAction, ErasureMatch, ErasureMode, Role
from facetrace.governance.users import IssuedKey, UserService
from facetrace.server.api.common import IdPath, read_upload
from facetrace.server.auth import engine_of, password_hasher
from facetrace.server.reads import audited_read
from facetrace.server.ui.common import Visitor, check_csrf, data_uri, redirect, render, signed_in

router = APIRouter()
_admins = signed_in(Role.ADMIN)
_readers = signed_in(Role.ADMIN, Role.AUDITOR)
# What a form can get wrong: shown on the page again with the message, rather than as an error page.
_FORM_ERRORS = (InvalidRequestError, NotFoundError, ConflictError, NoFaceError, FaceSelectionError, ImageDecodeError)


# -- users and keys ------------------------------------------------------------------------------------------------


def _users_page(
    request: Request,
    visitor: Visitor,
    status_code: int = 200,
    error: str | None = None,
    issued: IssuedKey | None = None,
) -> HTMLResponse:
    users = engine_of(request).users
    listed = [(user, users.api_keys(user.name)) for user in users.users()]
    return render(
        request,
        "admin_users.html",
        visitor,
        status_code=status_code,
        users=listed,
        roles=tuple(Role),
        error=error,
        issued=issued,
    )


def _change_users(
    request: Request, visitor: Visitor, csrf_token: str, error_status: int, change: Callable[[UserService], object]
) -> Response:
    """Every users form: the CSRF check, the change, then the users page again with the form's error
    (error_status), or with a new secret shown once (201, never in a redirect's address), or a redirect to it."""
    check_csrf(visitor, csrf_token)
    try:
        outcome = change(engine_of(request).users)
    except _FORM_ERRORS as exc:
        return _users_page(request, visitor, status_code=error_status, error=str(exc))
    if isinstance(outcome, IssuedKey):
        return _users_page(request, visitor, status_code=201, issued=outcome)
    return redirect("/admin/users")


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, visitor: Annotated[Visitor, Depends(_readers)]) -> HTMLResponse:
    return _users_page(request, visitor)


@router.post("/admin/users", response_model=None)
def add_user(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """A new user with a role, an API key shown once, and a password if one is given (for the web UI)."""
    hasher = password_hasher() if password else None
    return _change_users(
        request,
        visitor,
        csrf_token,
        422,
        lambda users: users.add_user(name, role, visitor.user.name, password=password or None, hasher=hasher),
    )


@router.post("/admin/users/{name}/deactivate", response_model=None)
def deactivate_user(
    name: str,
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    return _change_users(request, visitor, csrf_token, 409, lambda users: users.deactivate(name, visitor.user.name))


@router.post("/admin/users/{name}/password", response_model=None)
def set_password(
    name: str,
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    return _change_users(
        request,
        visitor,
        csrf_token,
        422,
        lambda users: users.set_password(name, password, visitor.user.name, password_hasher()),
    )


@router.post("/admin/users/{name}/keys", response_model=None)
def issue_key(
    name: str,
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    return _change_users(request, visitor, csrf_token, 404, lambda users: users.issue_key(name, visitor.user.name))


@router.post("/admin/users/{name}/keys/{key_id}/revoke", response_model=None)
def revoke_key(
    name: str,
    key_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    return _change_users(
        request, visitor, csrf_token, 409, lambda users: users.revoke_key(name, key_id, visitor.user.name)
    )


# -- erasure: preview, then confirm --------------------------------------------------------------------------------


class PendingErasures:
    """Previews shown to an admin and not yet confirmed, kept in this server's memory: a confirmation erases exactly
    the faces of the preview the admin saw (those they kept ticked), never a new search's, and the requester's face
    (an embedding of a photo that is not kept) is known only here. A preview is its admin's alone, lasts
    TTL_S, and goes when confirmed; a restart forgets them all (preview again)."""

    TTL_S = 30 * 60
    MAX_KEPT = 200

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._previews: dict[str, tuple[str, float, ErasurePreview]] = {}

    def add(self, user: str, preview: ErasurePreview) -> str:
        preview_id = secrets.token_urlsafe(18)
        with self._lock:
            self._expire()
            while len(self._previews) >= self.MAX_KEPT:
                del self._previews[next(iter(self._previews))]
            self._previews[preview_id] = (user, time.monotonic(), preview)
        return preview_id

    def take(self, preview_id: str, user: str) -> ErasurePreview:
        """The preview, removed: two confirmations of one preview cannot both run (put it back if one fails)."""
        with self._lock:
            self._expire()
            kept = self._previews.get(preview_id)
            if kept is None or kept[0] != user:
                raise InvalidRequestError(
                    "this preview has expired or was confirmed already: preview the request again"
                )
            del self._previews[preview_id]
        return kept[2]

    def put_back(self, preview_id: str, user: str, preview: ErasurePreview) -> None:
        with self._lock:
            self._previews[preview_id] = (user, time.monotonic(), preview)

    def _expire(self) -> None:
        oldest = time.monotonic() - self.TTL_S
        for preview_id in [key for key, (_, at, _) in self._previews.items() if at < oldest]:
            del self._previews[preview_id]


def pending_of(request: Request) -> PendingErasures:
    pending: PendingErasures = request.app.state.erasure_previews
    return pending


def _erasures_page(
    request: Request, visitor: Visitor, status_code: int = 200, error: str | None = None, **form: Any
) -> HTMLResponse:
    receipts = engine_of(request).erasure.receipts()
    return render(
        request, "admin_erasures.html", visitor, status_code=status_code, receipts=receipts, error=error, form=form
    )


def _preview_page(
    request: Request,
    visitor: Visitor,
    preview_id: str,
    preview: ErasurePreview,
    reason: str,
    status_code: int = 200,
    error: str | None = None,
    back: str | None = None,
) -> HTMLResponse:
    """The preview with each face's thumbnail inline: the admin sees what goes (one audited view of them all,
    under the purpose "erasure preview")."""
    engine = engine_of(request)
    context = engine.cases.browsing(visitor.user, None, "erasure preview")
    shown = engine.gallery.show_faces(
        visitor.user, preview.face_ids, context, AuditAction.VIEW_THUMBNAIL, "erasure-preview"
    ).thumbnails
    return render(
        request,
        "admin_erasure_preview.html",
        visitor,
        status_code=status_code,
        preview_id=preview_id,
        preview=preview,
        thumbnails={face_id: data_uri(data) for face_id, data in shown.items()},
        photos=len({candidate.asset_id for candidate in preview.candidates}),
        reason=reason,
        error=error,
        back=back,
        ErasureMatch=ErasureMatch,
        ErasureMode=ErasureMode,
    )


def show_preview(
    request: Request, visitor: Visitor, preview: ErasurePreview, reason: str, back: str | None = None
) -> HTMLResponse:
    """Keep a preview for its admin until confirmed and show it (the erasure screen's forms, and the people view's:
    back is where Cancel leads)."""
    preview_id = pending_of(request).add(visitor.user.name, preview)
    return _preview_page(request, visitor, preview_id, preview, reason, back=back)


def _preview(
    request: Request,
    visitor: Visitor,
    csrf_token: str,
    reason: str,
    make: Callable[[], ErasurePreview],
    **form: str,
) -> Response:
    """Every erasure form: the CSRF check, the preview (audited; nothing is erased), then its page with the faces
    ticked and a confirm button; or the erasure page again with the form's error and what was typed (form)."""
    check_csrf(visitor, csrf_token)
    try:
        preview = make()
    except _FORM_ERRORS as exc:
        return _erasures_page(request, visitor, 422, str(exc), reason=reason, **form)
    return show_preview(request, visitor, preview, reason)


@router.get("/admin/erasures", response_class=HTMLResponse)
def erasures_page(request: Request, visitor: Annotated[Visitor, Depends(_readers)]) -> HTMLResponse:
    page = _erasures_page(request, visitor)
    audited_read(request, visitor.user, AuditAction.LIST_RECEIPTS, "erasures")
    return page


def _face_ids(text: str) -> list[int]:
    parts = [part for part in text.replace(",", " ").split() if part]
    if not parts:
        raise InvalidRequestError("face ids are whole numbers, separated by commas or spaces")
    return [catalog_id(part, "a face id") for part in parts]


@router.post("/admin/erasures/faces", response_model=None)
def erase_faces(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    face_ids: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """The preview of erasing these face ids."""
    return _preview(
        request,
        visitor,
        csrf_token,
        reason,
        lambda: engine_of(request).erasure.preview_faces(visitor.user.name, _face_ids(face_ids)),
        face_ids=face_ids,
    )


@router.post("/admin/erasures/person", response_model=None)
def erase_person(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    label: Annotated[str, Form()] = "",
    with_matches: Annotated[bool, Form()] = False,
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """The preview of erasing the faces labelled so (with_matches: and the faces matching them)."""
    return _preview(
        request,
        visitor,
        csrf_token,
        reason,
        lambda: engine_of(request).erasure.preview_person(visitor.user.name, label, with_matches=with_matches),
        label=label,
    )


@router.post("/admin/erasures/photo", response_model=None)
def erase_by_photo(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    photo: Annotated[UploadFile | None, File()] = None,
    face_index: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """'Remove me' with the requester's photo: the preview of the faces matching the requester's face, as in the
    API (the photo itself is not kept; the preview holds the requester's face's embedding until confirmed)."""

    def make() -> ErasurePreview:
        if photo is None or not photo.filename:
            raise InvalidRequestError("choose the requester's photo to upload")
        index = catalog_id(face_index, "the requester's face number (0, 1, 2...)") if face_index.strip() else None
        data, name = read_upload(photo, "the requester's photo")
        return engine_of(request).erasure.preview_photo(visitor.user.name, data, name, face_index=index)

    return _preview(request, visitor, csrf_token, reason, make, face_index=face_index)


@router.post("/admin/erasures/confirm", response_model=None)
def confirm_erasure(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    preview_id: Annotated[str, Form()] = "",
    face_id: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Erase exactly the ticked faces of the preview this admin saw, then show the receipt."""
    check_csrf(visitor, csrf_token)
    pending = pending_of(request)
    try:
        preview = pending.take(preview_id, visitor.user.name)
    except InvalidRequestError as exc:
        return _erasures_page(request, visitor, 409, str(exc), reason=reason)
    try:
        ticked = _face_ids(" ".join(face_id)) if face_id else []
        receipt = engine_of(request).erasure.erase_previewed(visitor.user.name, preview, reason, face_ids=ticked)
    except _FORM_ERRORS as exc:
        pending.put_back(preview_id, visitor.user.name, preview)  # the admin may fix the form and confirm again
        return _preview_page(request, visitor, preview_id, preview, reason, 422, str(exc))
    return redirect(f"/admin/erasures/{receipt.receipt_id}")


@router.get("/admin/erasures/{receipt_id}", response_class=HTMLResponse)
def receipt_page(receipt_id: str, request: Request, visitor: Annotated[Visitor, Depends(_readers)]) -> HTMLResponse:
    receipt = engine_of(request).erasure.receipt(receipt_id)
    audited_read(request, visitor.user, AuditAction.VIEW_RECEIPT, f"receipt:{receipt.receipt_id}")
    return render(request, "admin_receipt.html", visitor, receipt=receipt)
