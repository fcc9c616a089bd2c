"""Users and API keys (admins), and who am I (everyone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.server.api.common import IdPath
from facetrace.server.auth import engine_of, password_hasher, require
from facetrace.server.schemas import ApiKeyOut, IssuedKeyOut, NewUserIn, UserOut

router = APIRouter(tags=["users"])


@router.get("/me", response_model=UserOut)
def me(user: Annotated[User, Depends(require(Role.ADMIN, Role.INVESTIGATOR, Role.REVIEWER, Role.AUDITOR))]) -> UserOut:
    """The calling user and their role."""
    return UserOut.model_validate(user)


@router.get("/users", response_model=list[UserOut])
def list_users(request: Request, _user: Annotated[User, Depends(require(Role.ADMIN, Role.AUDITOR))]) -> list[UserOut]:
    return [UserOut.model_validate(user) for user in engine_of(request).users.users()]


@router.post("/users", response_model=IssuedKeyOut, status_code=201)
def add_user(body: NewUserIn, request: Request, user: Annotated[User, Depends(require(Role.ADMIN))]) -> IssuedKeyOut:
    """Add a user with a role; the response carries their API key, shown this once."""
    issued = engine_of(request).users.add_user(
        body.name, body.role, user.name, password=body.password, hasher=password_hasher()
    )
    return IssuedKeyOut.model_validate(issued)


@router.post("/users/{name}/deactivate", response_model=UserOut)
def deactivate_user(name: str, request: Request, user: Annotated[User, Depends(require(Role.ADMIN))]) -> UserOut:
    """Revoke every key of a user and refuse their password from now on; what they did stays on record."""
    return UserOut.model_validate(engine_of(request).users.deactivate(name, user.name))


@router.post("/users/{name}/keys", response_model=IssuedKeyOut, status_code=201)
def issue_key(name: str, request: Request, user: Annotated[User, Depends(require(Role.ADMIN))]) -> IssuedKeyOut:
    """A further API key for a user (shown this once)."""
    issued = engine_of(request).users.issue_key(name, user.name)
    return IssuedKeyOut.model_validate(issued)


@router.get("/users/{name}/keys", response_model=list[ApiKeyOut])
def list_keys(
    name: str, request: Request, _user: Annotated[User, Depends(require(Role.ADMIN, Role.AUDITOR))]
) -> list[ApiKeyOut]:
    """A user's keys, revoked ones included: id, prefix and dates, never the key."""
    return [ApiKeyOut.model_validate(key) for key in engine_of(request).users.api_keys(name)]


@router.post("/users/{name}/keys/{key_id}/revoke", response_model=ApiKeyOut)
def revoke_key(
    name: str, key_id: IdPath, request: Request, user: Annotated[User, Depends(require(Role.ADMIN))]
) -> ApiKeyOut:
    """Revoke one key (a leaked one, say); the user's other keys and password keep working. Audited."""
    return ApiKeyOut.model_validate(engine_of(request).users.revoke_key(name, key_id, user.name))
