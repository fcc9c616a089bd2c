"""Users, roles and API keys.

API keys are random (secrets.token_urlsafe), shown once and stored as their sha256: a key carries 256 bits of
entropy, so a fast hash cannot be brute-forced the way a password hash can. Passwords go through a slow hasher
(argon2), which the server supplies through the PasswordHasher protocol: this layer stays stdlib-only.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from facetrace.core.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from facetrace.core.limits import MAX_PASSWORD
from facetrace.core.ports import UserStore
from facetrace.core.types import ApiKey, User
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.governance.audit import AuditLog

API_KEY_PREFIX = "ft_"
API_KEY_BYTES = 32
# The API's floor for a new user's password (NewUserIn): above NIST SP 800-63B's 8, since these accounts can
# search faces; argon2 and the sign-in lockout make guessing slow beyond that.
MIN_PASSWORD_LENGTH = 12


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, encoded: str, password: str) -> bool: ...


@dataclass(frozen=True)
class IssuedKey:
    """A new user's or new key's secret: shown once, never stored in the clear."""

    user: User
    api_key: str


def key_sha256(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


# Names the audit log and the service use for callers that are not users: a user may not take them.
RESERVED_USER_NAMES = frozenset({"anonymous", "system", "unknown", "root@localhost"})
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def valid_user_name(name: str) -> str:
    """A user name as stored: 1-64 letters, digits and . _ @ -, starting with a letter or digit; none of the
    RESERVED_USER_NAMES, and no ':' (actors such as cli:alice and ingest:run 3 are never users)."""
    name = name.strip()
    if not name:
        raise InvalidRequestError("a user name cannot be blank")
    if name.lower() in RESERVED_USER_NAMES:
        raise InvalidRequestError(f"{name!r} is reserved: the audit log uses it for callers that are not users")
    if not _USER_NAME.match(name):
        raise InvalidRequestError(
            "a user name is 1-64 letters, digits and . _ @ -, starting with a letter or digit (no ':' or spaces)"
        )
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequestError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidRequestError(f"a password is at most {MAX_PASSWORD:,} characters")


def require_role(user: User, *roles: Role) -> None:
    if user.role not in roles:
        raise PermissionDeniedError(f"user {user.name!r} has role {str(user.role)!r}; this needs {' or '.join(roles)}")


def _as_role(role: str) -> Role:
    """A role named by a caller (a form, a request body, the command line); InvalidRequestError if it is none."""
    try:
        return Role(role)
    except ValueError:
        raise InvalidRequestError(f"role {role!r} is not one of {', '.join(Role)}") from None


class UserService:
    def __init__(self, store: UserStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit
        self._decoy: str | None = None

    def create_admin(self, name: str, actor: str) -> IssuedKey:
        """The first administrator (or another one, from the command line, which is trusted as the host's owner)."""
        return self._add(name, Role.ADMIN, actor, None)

    def add_user(
        self, name: str, role: Role | str, actor: str, password: str | None = None, hasher: PasswordHasher | None = None
    ) -> IssuedKey:
        if password is not None and hasher is None:
            raise InvalidRequestError("a password needs a password hasher (the server provides argon2)")
        if password is not None:
            _check_password(password)
        encoded = hasher.hash(password) if password is not None and hasher is not None else None
        return self._add(name, role, actor, encoded)

    def issue_key(self, name: str, actor: str) -> IssuedKey:
        user = self.user(name)
        api_key = self._new_key(user)
        self._audit.record(actor, AuditAction.ISSUE_API_KEY, f"user:{user.name}", prefix=api_key[:10])
        return IssuedKey(user, api_key)

    def deactivate(self, name: str, actor: str) -> User:
        """Stop a user: their keys are revoked and their password no longer signs in. Their records stay."""
        user = self.user(name)
        if user.name == actor:
            raise ConflictError("users cannot deactivate themselves; ask another administrator")
        revoked = self._store.deactivate_user(user.name)
        self._audit.record(actor, AuditAction.DEACTIVATE_USER, f"user:{user.name}", keys_revoked=revoked)
        return self.user(name)

    def set_password(self, name: str, password: str, actor: str, hasher: PasswordHasher) -> User:
        """Give a user a (new) password for the web UI and HTTP Basic; their API keys stay as they are."""
        user = self.user(name)
        _check_password(password)
        self._store.set_password_hash(user.name, hasher.hash(password))
        self._audit.record(actor, AuditAction.SET_PASSWORD, f"user:{user.name}")
        return user

    def end_session(self, token: str, max_age_s: float) -> None:
        """Sign-out of one web session (named by its secret token): refused from now on, wherever a copy of its
        cookie is. A password change or a deactivation ends all of a user's sessions instead."""
        self._store.end_session(key_sha256(token), datetime.now(UTC) - timedelta(seconds=max_age_s))

    def session_valid(self, user: User, token: str, issued_at: float) -> bool:
        """Whether a web session of this user, with this token and issue time, may still be used."""
        if user.sessions_valid_after is not None and issued_at < user.sessions_valid_after.timestamp():
            return False
        return not self._store.session_ended(key_sha256(token))

    def api_keys(self, name: str) -> list[ApiKey]:
        return self._store.api_keys(self.user(name).user_id)

    def revoke_key(self, name: str, key_id: int, actor: str) -> ApiKey:
        """Revoke one key (a leaked one, say) and leave the user's other keys and password working."""
        user = self.user(name)
        keys = {key.key_id: key for key in self._store.api_keys(user.user_id)}
        key = keys.get(key_id)
        if key is None:
            raise NotFoundError(f"user {user.name!r} has no API key {key_id}")
        if not key.active or not self._store.revoke_api_key(user.user_id, key_id):
            raise ConflictError(f"API key {key_id} of {user.name!r} is revoked already")
        self._audit.record(actor, AuditAction.REVOKE_API_KEY, f"user:{user.name}", key_id=key_id, prefix=key.prefix)
        return next(k for k in self._store.api_keys(user.user_id) if k.key_id == key_id)

    def user(self, name: str) -> User:
        user = self._store.user(name)
        if user is None:
            raise NotFoundError(f"no user named {name!r}")
        return user

    def users(self) -> list[User]:
        return self._store.users()

    def authenticate_key(self, api_key: str) -> User:
        user = self._store.user_by_key(key_sha256(api_key))
        if user is None or not user.active:
            raise AuthenticationError("the API key is unknown or revoked")
        return user

    def authenticate_password(self, name: str, password: str, hasher: PasswordHasher) -> User:
        """The user, if name and password match. Costs one password verification whether or not the user exists
        (or has a password): an unknown name once answered in 15 ms and a wrong password in 640 ms, which told an
        outsider which names exist."""
        user = self._store.user(name)
        encoded = self._store.password_hash(name) if user is not None else None
        matches = hasher.verify(encoded if encoded is not None else self._decoy_hash(hasher), password)
        if user is None or encoded is None or not user.active or not matches:
            raise AuthenticationError("wrong user name or password")
        return user

    def _decoy_hash(self, hasher: PasswordHasher) -> str:
        """A hash of a random password, made once with the same hasher: verifying against it costs what a real
        verification costs and never succeeds."""
        if self._decoy is None:
            self._decoy = hasher.hash(secrets.token_urlsafe(24))
        return self._decoy

    def _add(self, name: str, role: Role | str, actor: str, password_hash: str | None) -> IssuedKey:
        name = valid_user_name(name)
        role = _as_role(role)
        if self._store.user(name) is not None:
            raise ConflictError(f"a user named {name!r} already exists")
        user = self._store.add_user(name, role, password_hash)
        api_key = self._new_key(user)
        self._audit.record(actor, AuditAction.ADD_USER, f"user:{name}", role=role, prefix=api_key[:10])
        return IssuedKey(user, api_key)

    def _new_key(self, user: User) -> str:
        api_key = API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)
        self._store.add_api_key(user.user_id, key_sha256(api_key), api_key[:10])
        return api_key
