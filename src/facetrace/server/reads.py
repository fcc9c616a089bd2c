"""Reads and denials in the audit log: who read which case, search, page of the audit log, erasure receipt or
ingest job, and who was refused what (403).

A page can come back many times a minute (the ingest page reloads itself every few seconds while a job runs; a
reader reloads a case): the same reader's read of the same thing within FOLD_S of the last one recorded is folded
into that entry rather than written again, so the log stays readable. A page view writes one entry for what it
shows (view_case for a case page), never one per image on it (those are their own audited views: view_thumbnail,
view_probe). Denials are never folded: each is an attempt (the rate limits bound how many).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import Request

from facetrace.core.types import User
from facetrace.core.vocabulary import AuditAction
from facetrace.governance.audit import AuditLog

FOLD_S = 60.0
_MAX_REMEMBERED = 10_000  # (reader, action, target) keys kept for folding; the oldest go first


class ReadLog:
    """Records reads in an audit log, folding a repeat of the same read by the same user within FOLD_S."""

    def __init__(self, audit: AuditLog, fold_s: float = FOLD_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._audit = audit
        self._fold_s = fold_s
        self._clock = clock
        self._last: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, user: User, action: AuditAction, target: str, **details: object) -> bool:
        """Record user's read of target, unless the same read was recorded less than fold_s ago; True if written."""
        key = (user.name, str(action), target)
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._fold_s:
                return False
            self._last.pop(key, None)
            self._last[key] = now
            while len(self._last) > _MAX_REMEMBERED:
                self._last.popitem(last=False)
        self._audit.record(user.name, action, target, **details)
        return True


def reads_of(request: Request) -> ReadLog:
    reads: ReadLog = request.app.state.reads
    return reads


def audited_read(request: Request, user: User, action: AuditAction, target: str, **details: object) -> None:
    reads_of(request).read(user, action, target, **details)


def record_denial(request: Request, audit: AuditLog, reason: str) -> None:
    """A 403: who (the signed-in or authenticated user, set on request.state by the role check) tried what."""
    user: User | None = getattr(request.state, "user", None)
    audit.record(
        user.name if user is not None else "anonymous",
        AuditAction.DENIED,
        f"{request.method} {request.url.path[:500]}",
        role=user.role if user is not None else None,
        reason=reason[:500],
    )
