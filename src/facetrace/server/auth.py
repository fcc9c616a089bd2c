"""Who is calling, and may they: API keys (Bearer or X-API-Key) or a user's password (HTTP Basic).

Every route but /health depends on require(...) with the roles it allows: 401 without valid credentials,
403 with a role not listed, 429 over the caller's rate limit or during a sign-in lockout (server/ratelimit.py).

Both dependencies run on the event loop (FastAPI runs a plain function dependency on a worker thread, one hand-off
each way per dependency and request); what blocks, a catalog read or a password's argon2 verification, is handed to
a worker thread. A request with a body had its API key checked at the door (server/limits.py) and needs neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from facetrace.core.errors import AuthenticationError
from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.engine import Engine
from facetrace.governance.users import key_sha256, require_role
from facetrace.server.limits import door_checked_user
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.ratelimit import Guards, password_sign_in

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (shown once at creation).")
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>.")
_basic = HTTPBasic(auto_error=False, description="A user's name and password.")
_hasher = Argon2Hasher()


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def guards_of(request: Request) -> Guards:
    guards: Guards = request.app.state.guards
    return guards


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_user(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> User:
    engine = engine_of(request)
    guards = guards_of(request)
    key = api_key or (bearer.credentials if bearer is not None else None)
    if key:
        user = door_checked_user(request.scope.setdefault("state", {}), key)
        if user is None:
            user = await run_in_threadpool(engine.users.authenticate_key, key)
        caller = key_sha256(key)
    elif basic is not None:
        user = await run_in_threadpool(
            password_sign_in, engine, guards, basic.username, basic.password, _hasher, client_address(request), "api"
        )
        caller = f"user:{user.name}"
    else:
        raise AuthenticationError("authentication required: send an API key (X-API-Key or Bearer) or HTTP Basic")
    request.state.user = user  # who a 403 denied (server/reads.py)
    guards.spend(caller, request.method, request.url.path)
    return user


def require(*roles: Role) -> Callable[..., Awaitable[User]]:
    """A dependency returning the calling user if their role is one of roles."""

    async def dependency(user: Annotated[User, Depends(current_user)]) -> User:
        require_role(user, *roles)
        return user

    dependency.__name__ = "require_" + "_or_".join(roles)
    return dependency


def password_hasher() -> Argon2Hasher:
    return _hasher
