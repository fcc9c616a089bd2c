"""The web UI's administration screens: users and their API keys, and erasure with its receipts.

The same engine calls as the API's /users and /erasures routes, so the same rules and audit entries hold. Admins
change things; auditors may read the same pages (users, keys, receipts) without the forms, as in the API. A new
user's or new key's secret is shown once, on the page that answers the form (never in a redirect's address), and
only its prefix afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from facetrace.core.errors import (
    ConflictError,
    ImageDecodeError,
    InvalidRequestError,
    NoFaceError,
    NotFoundError,
)
from facetrace.core.types import ErasureReceipt
from facetrace.core.vocabulary import Role
from facetrace.governance.users import IssuedKey, UserService
from facetrace.server.api.common import IdPath, read_upload
from facetrace.server.auth import engine_of, password_hasher
from facetrace.server.ui.common import Visitor, check_csrf, redirect, render, signed_in

router = APIRouter()
_admins = signed_in(Role.ADMIN)
_readers = signed_in(Role.ADMIN, Role.AUDITOR)
# What a form can get wrong: shown on the page again with the message, rather than as an error page.
_FORM_ERRORS = (InvalidRequestError, NotFoundError, ConflictError, NoFaceError, ImageDecodeError)


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


# -- erasure -------------------------------------------------------------------------------------------------------


def _erasures_page(
    request: Request, visitor: Visitor, status_code: int = 200, error: str | None = None, **form: Any
) -> HTMLResponse:
    receipts = engine_of(request).erasure.receipts()
    return render(
        request, "admin_erasures.html", visitor, status_code=status_code, receipts=receipts, error=error, form=form
    )


def _erase(
    request: Request, visitor: Visitor, csrf_token: str, erase: Callable[[], ErasureReceipt], **form: str
) -> Response:
    """Every erasure form: the CSRF check, the erasure, then its receipt's page, or the erasure page again with the
    form's error and what was typed (form)."""
    check_csrf(visitor, csrf_token)
    try:
        receipt = erase()
    except _FORM_ERRORS as exc:
        return _erasures_page(request, visitor, 422, str(exc), **form)
    return redirect(f"/admin/erasures/{receipt.receipt_id}")


@router.get("/admin/erasures", response_class=HTMLResponse)
def erasures_page(request: Request, visitor: Annotated[Visitor, Depends(_readers)]) -> HTMLResponse:
    return _erasures_page(request, visitor)


def _face_ids(text: str) -> list[int]:
    parts = [part for part in text.replace(",", " ").split() if part]
    if not parts or not all(part.isdigit() for part in parts):
        raise InvalidRequestError("face ids are whole numbers, separated by commas or spaces")
    return [int(part) for part in parts]


@router.post("/admin/erasures/faces", response_model=None)
def erase_faces(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    face_ids: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    def erase() -> ErasureReceipt:
        ids = _face_ids(face_ids)
        engine = engine_of(request)
        return engine.erasure.erase_faces(visitor.user.name, ids, reason)

    return _erase(request, visitor, csrf_token, erase, face_ids=face_ids, reason=reason)


@router.post("/admin/erasures/person", response_model=None)
def erase_person(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    label: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    def erase() -> ErasureReceipt:
        engine = engine_of(request)
        return engine.erasure.erase_person(visitor.user.name, label, reason)

    return _erase(request, visitor, csrf_token, erase, label=label, reason=reason)


@router.post("/admin/erasures/photo", response_model=None)
def erase_by_photo(
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    photo: Annotated[UploadFile | None, File()] = None,
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """'Remove me' with the requester's photo: matched at the strict threshold, as in the API."""

    def erase() -> ErasureReceipt:
        if photo is None or not photo.filename:
            raise InvalidRequestError("choose the requester's photo to upload")
        if not reason.strip():
            raise InvalidRequestError("an erasure states its reason (e.g. the request it answers)")
        data, name = read_upload(photo, "the requester's photo")
        engine = engine_of(request)
        return engine.erasure.erase_by_photo(visitor.user.name, data, name, reason)

    return _erase(request, visitor, csrf_token, erase, reason=reason)


@router.get("/admin/erasures/{receipt_id}", response_class=HTMLResponse)
def receipt_page(receipt_id: str, request: Request, visitor: Annotated[Visitor, Depends(_readers)]) -> HTMLResponse:
    receipt = engine_of(request).erasure.receipt(receipt_id)
    return render(request, "admin_receipt.html", visitor, receipt=receipt)
