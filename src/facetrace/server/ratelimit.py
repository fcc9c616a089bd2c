"""Sign-in lockout and per-key rate limits, kept in memory by each server process.

Password guessing: failed sign-ins (web UI form and HTTP Basic alike) are counted per user name and per client
address in a sliding window; once either reaches its limit, every attempt for that name or from that address is
refused with 429 and Retry-After for the lockout period, even with the right password, so a guesser learns nothing
from a lucky guess during the lockout. Failures and lockouts are audited (never the password); a web UI sign-in is
audited too (an HTTP Basic request is a sign-in per request, and auditing each would flood the log).

API keys: a token bucket per key (per user name for HTTP Basic) refills at requests_per_minute up to burst; searches
and comparisons draw from a second, smaller bucket too, since each runs the face models.

In memory, per process: a restart forgets counts, and N processes allow N times the rate. One facetrace process per
data directory is the supported deployment (the index lock is per process too), so that is the honest trade-off.

A locked-out name or address is refused before its password is checked, which also caps the CPU a guesser can burn:
one argon2id verification took 0.71 s here (argon2-cffi defaults, 2 cores shared with other jobs, load ~13).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from facetrace.config import Settings
from facetrace.core.errors import AuthenticationError, RateLimitedError
from facetrace.core.types import User
from facetrace.core.vocabulary import AuditAction
from facetrace.engine import Engine
from facetrace.governance.users import PasswordHasher

Clock = Callable[[], float]

# Counters kept at most: an attacker cycling through made-up user names or addresses evicts the oldest counters
# rather than growing memory without bound. Measured with tracemalloc: 100k sign-in counters of one or two failures
# take 42 MB, 100k token buckets 31 MB. (Eviction can drop a real counter under such a flood; the per-address limit
# stops one address from making the flood.)
MAX_TRACKED = 100_000
# Longest user name written to the audit log for a failed sign-in: real names are far shorter, and a pasted
# password in the name field should not be kept whole.
MAX_AUDITED_NAME = 64
# Requests that run the face models (search, compare, erase by photo) and so also draw from the search bucket.
_COSTLY = re.compile(r"/(cases/\d+/searches|compare|erasures/photo(/preview)?)$")


def is_costly(method: str, path: str) -> bool:
    return method == "POST" and _COSTLY.search(path) is not None


@dataclass(slots=True)
class _Failures:
    times: list[float] = field(default_factory=list)  # at most the limit: a lockout clears it
    locked_until: float = 0.0


class SignInGuard:
    """Counts failed password sign-ins per user name and per client address; locks either out at its limit."""

    def __init__(
        self,
        max_failures_per_user: int,
        max_failures_per_address: int,
        window_s: float,
        lockout_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._limits = {"user": max_failures_per_user, "address": max_failures_per_address}
        self._window_s = window_s
        self._lockout_s = lockout_s
        self._clock = clock
        self._state: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def lockout_s(self) -> float:
        return self._lockout_s

    def check(self, name: str, address: str) -> None:
        """Raise RateLimitedError while the name or the address is locked out."""
        now = self._clock()
        with self._lock:
            wait = max(self._locked_for(key, now) for key in _keys(name, address))
        if wait > 0:
            raise RateLimitedError(
                f"too many failed sign-ins; try again in {_minutes(wait)}", retry_after_s=math.ceil(wait)
            )

    def failed(self, name: str, address: str) -> list[str]:
        """Count one failure; returns the keys ("user:NAME", "address:ADDR") that this failure locked out."""
        now = self._clock()
        locked = []
        with self._lock:
            for key in _keys(name, address):
                failures = self._state.pop(key, None) or _Failures()
                self._state[key] = failures  # newest last: eviction drops the least recently failed
                failures.times = [t for t in failures.times if t > now - self._window_s] + [now]
                if len(failures.times) >= self._limits[key[0]] and failures.locked_until <= now:
                    failures.locked_until = now + self._lockout_s
                    failures.times.clear()
                    locked.append(f"{key[0]}:{key[1]}")
            while len(self._state) > MAX_TRACKED:
                self._state.popitem(last=False)
        return locked

    def succeeded(self, name: str) -> None:
        """A right password outside a lockout clears the name's failures (not the address's)."""
        with self._lock:
            self._state.pop(_keys(name, "")[0], None)

    def _locked_for(self, key: tuple[str, str], now: float) -> float:
        failures = self._state.get(key)
        return 0.0 if failures is None else max(0.0, failures.locked_until - now)


def _keys(name: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return ("user", name.strip().casefold()), ("address", address)


def _minutes(seconds: float) -> str:
    return f"{math.ceil(seconds / 60)} min" if seconds >= 60 else f"{math.ceil(seconds)} s"


class TokenBuckets:
    """One token bucket per caller: burst requests at once, then per_minute a minute. per_minute 0: no limit."""

    def __init__(self, per_minute: float, burst: int, what: str, clock: Clock = time.monotonic) -> None:
        self._rate_per_s = per_minute / 60.0
        self._burst = float(burst)
        self._what = what
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, caller: str) -> None:
        """Spend one token of caller's bucket, or raise RateLimitedError saying when the next one comes."""
        if self._rate_per_s <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(caller, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate_per_s)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                wait = (1.0 - tokens) / self._rate_per_s
                raise RateLimitedError(
                    f"rate limit: at most {self._rate_per_s * 60:g} {self._what} a minute per API key or user "
                    f"(bursts of {self._burst:g}); retry in {math.ceil(wait)} s",
                    retry_after_s=math.ceil(wait),
                )
            self._buckets[caller] = (tokens - 1.0, now)
            while len(self._buckets) > MAX_TRACKED:
                self._buckets.popitem(last=False)


@dataclass(frozen=True)
class Guards:
    """A server's sign-in guard and rate limits, shared by the API and the web UI."""

    sign_in: SignInGuard
    requests: TokenBuckets
    searches: TokenBuckets

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = time.monotonic) -> Guards:
        return cls(
            sign_in=SignInGuard(
                settings.sign_in_max_failures,
                settings.sign_in_max_failures_per_address,
                settings.sign_in_window_s,
                settings.sign_in_lockout_s,
                clock,
            ),
            requests=TokenBuckets(settings.api_requests_per_minute, settings.api_burst, "requests", clock),
            searches=TokenBuckets(
                settings.search_requests_per_minute, settings.search_burst, "searches and comparisons", clock
            ),
        )

    def spend(self, caller: str, method: str, path: str) -> None:
        """One API request by caller (a key's sha256, or "user:NAME" for HTTP Basic)."""
        self.requests.take(caller)
        if is_costly(method, path):
            self.searches.take(caller)


def password_sign_in(
    engine: Engine, guards: Guards, name: str, password: str, hasher: PasswordHasher, address: str, channel: str
) -> User:
    """Check a user name and password under the lockout rules, auditing failures and lockouts.

    Raises RateLimitedError while the name or address is locked out (without checking the password), else
    AuthenticationError for a wrong password (counted), else returns the user."""
    guards.sign_in.check(name, address)
    try:
        user = engine.users.authenticate_password(name, password, hasher)
    except AuthenticationError:
        attempted = name.strip()[:MAX_AUDITED_NAME]
        engine.audit.record(
            "anonymous", AuditAction.SIGN_IN_FAILED, f"user:{attempted}", address=address, channel=channel
        )
        for locked in guards.sign_in.failed(name, address):
            kind, _, who = locked.partition(":")
            engine.audit.record(
                "anonymous",
                AuditAction.SIGN_IN_LOCKOUT,
                f"{kind}:{who[:MAX_AUDITED_NAME]}",
                address=address,
                channel=channel,
                lockout_s=guards.sign_in.lockout_s,
            )
        raise
    guards.sign_in.succeeded(name)
    return user
