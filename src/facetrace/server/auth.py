"""Who is calling, and may they: API keys (Bearer or X-API-Key) or a user's password (HTTP Basic).

Every route but /health depends on require(...) with the roles it allows: 401 without valid credentials,
403 with a role not listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from facetrace.core.errors import AuthenticationError
from facetrace.core.types import User
from facetrace.engine import Engine
from facetrace.governance.users import require_role
from facetrace.server.passwords import Argon2Hasher

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (shown once at creation).")
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>.")
_basic = HTTPBasic(auto_error=False, description="A user's name and password.")
_hasher = Argon2Hasher()


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def current_user(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> User:
    engine = engine_of(request)
    if api_key:
        return engine.users.authenticate_key(api_key)
    if bearer is not None:
        return engine.users.authenticate_key(bearer.credentials)
    if basic is not None:
        return engine.users.authenticate_password(basic.username, basic.password, _hasher)
    raise AuthenticationError("authentication required: send an API key (X-API-Key or Bearer) or HTTP Basic")


def require(*roles: str) -> Callable[..., User]:
    """A dependency returning the calling user if their role is one of roles."""

    def dependency(user: Annotated[User, Depends(current_user)]) -> User:
        require_role(user, *roles)
        return user

    dependency.__name__ = "require_" + "_or_".join(roles)
    return dependency


def password_hasher() -> Argon2Hasher:
    return _hasher
