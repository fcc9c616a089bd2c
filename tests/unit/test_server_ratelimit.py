"""The sign-in guard's sliding window and lockout, and the token buckets, on a clock the test moves (the real clock's
paths run in tests/integration/test_server_accounts.py)."""

from __future__ import annotations

import pytest

from facetrace.core.errors import RateLimitedError
from facetrace.server.ratelimit import SignInGuard, TokenBuckets, is_costly


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_in_the_window_lock_the_name_out_for_the_lockout_period() -> None:
    clock = Clock()
    guard = SignInGuard(5, 20, window_s=900, lockout_s=600, clock=clock)
    for _ in range(4):
        guard.check("Bob", "10.0.0.1")
        assert guard.failed("Bob", "10.0.0.1") == []
    assert guard.failed(" bob ", "10.0.0.2") == ["user:bob"]  # names are compared trimmed, case-insensitively
    with pytest.raises(RateLimitedError) as locked:
        guard.check("BOB", "10.9.9.9")
    assert locked.value.retry_after_s == 600
    guard.check("alice", "10.0.0.1")  # another name from the same address is not locked
    clock.now += 599
    with pytest.raises(RateLimitedError) as still:
        guard.check("bob", "10.0.0.1")
    assert still.value.retry_after_s == 1
    clock.now += 1
    guard.check("bob", "10.0.0.1")


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    guard = SignInGuard(3, 20, window_s=60, lockout_s=600, clock=clock)
    guard.failed("bob", "a")
    guard.failed("bob", "a")
    clock.now += 61
    assert guard.failed("bob", "a") == []
    guard.check("bob", "a")
    assert guard.failed("bob", "a") == []
    assert guard.failed("bob", "a") == ["user:bob"]


def test_a_success_clears_the_name_but_not_the_address() -> None:
    clock = Clock()
    guard = SignInGuard(3, 4, window_s=900, lockout_s=60, clock=clock)
    guard.failed("bob", "a")
    guard.failed("bob", "a")
    guard.succeeded("bob")
    assert guard.failed("bob", "a") == []  # the name starts again from one
    assert guard.failed("carol", "a") == ["address:a"]  # the address counted all four
    with pytest.raises(RateLimitedError):
        guard.check("dave", "a")


def test_a_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_minute=6, burst=3, what="requests", clock=clock)
    for _ in range(3):
        buckets.take("key-1")
    with pytest.raises(RateLimitedError) as limited:
        buckets.take("key-1")
    assert limited.value.retry_after_s == 10  # 6 a minute: one token every 10 s
    assert "at most 6 requests a minute" in str(limited.value)
    buckets.take("key-2")  # each key has its own bucket
    clock.now += 10
    buckets.take("key-1")
    with pytest.raises(RateLimitedError):
        buckets.take("key-1")


def test_a_zero_rate_means_no_limit() -> None:
    buckets = TokenBuckets(per_minute=0, burst=1, what="requests", clock=Clock())
    for _ in range(100):
        buckets.take("key")


def test_searches_compares_and_photo_erasures_are_the_costly_requests() -> None:
    assert is_costly("POST", "/api/v1/cases/12/searches")
    assert is_costly("POST", "/api/v1/compare")
    assert is_costly("POST", "/api/v1/erasures/photo")
    assert is_costly("POST", "/api/v1/erasures/photo/preview")  # it runs the face models too
    assert not is_costly("GET", "/api/v1/cases/12/searches")
    assert not is_costly("POST", "/api/v1/cases")
