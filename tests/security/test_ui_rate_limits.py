"""A signed-in web user spends the same budgets as an API key (server/ratelimit.py), keyed by user: a burst of UI
searches gets 429 with Retry-After, the user's HTTP Basic requests share the budget, and other users are not
affected. UI sessions used to have no rate limit at all."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from facetrace.config import Settings
from facetrace.core.vocabulary import Role
from facetrace.engine import open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher

PASSWORD = "a-long-password-1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _browser(app: object, name: str) -> tuple[TestClient, str]:
    client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)  # type: ignore[arg-type]
    token = _CSRF.search(client.get("/ui/login").text)
    assert token
    assert (
        client.post(
            "/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1)}
        ).status_code
        == 303
    )
    csrf = _CSRF.search(client.get("/ui/cases").text)
    assert csrf
    return client, csrf.group(1)


def test_a_burst_of_ui_searches_gets_429_keyed_by_user(tmp_path: Path) -> None:
    burst = Settings().search_burst  # the default budget, as an API key has it
    with open_engine(tmp_path / "data", workers=1) as engine:
        for name in ("ivan", "ida"):
            engine.users.add_user(name, Role.INVESTIGATOR, "test", password=PASSWORD, hasher=Argon2Hasher())
        case = engine.cases.open_case(engine.users.user("ivan"), "Case", "purpose", "warrant")
        app = create_app(engine)
        ivan, csrf = _browser(app, "ivan")
        url = f"/ui/cases/{case.case_id}/searches"
        # Searches without a photo are refused (422) after they spent their token: the budget is per request.
        statuses = [ivan.post(url, data={"purpose": "p", "csrf_token": csrf}).status_code for _ in range(burst + 1)]
        assert statuses[:burst] == [422] * burst
        assert statuses[burst] == 429
        limited = ivan.post(url, data={"purpose": "p", "csrf_token": csrf})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "rate limit" in limited.text
        assert ivan.get("/ui/cases").status_code == 200  # pages still draw from the larger request budget
        # The same user's HTTP Basic requests spend the same search budget ("user:ivan")...
        basic = "Basic " + base64.b64encode(f"ivan:{PASSWORD}".encode()).decode()
        with TestClient(app, raise_server_exceptions=False) as api:
            answer = api.post(
                f"/api/v1/cases/{case.case_id}/searches",
                headers={"Authorization": basic},
                data={"purpose": "p"},
                files={"probe": ("p.jpg", b"\xff\xd8", "image/jpeg")},
            )
            assert answer.status_code == 429 and answer.json()["error"]["code"] == "rate_limited"
        # ... while another user has a budget of their own.
        ida, ida_csrf = _browser(app, "ida")
        assert ida.post(url, data={"purpose": "p", "csrf_token": ida_csrf}).status_code == 422
        for client in (ivan, ida):
            client.close()


def test_the_request_budget_covers_ui_pages_but_not_the_images_on_them(tmp_path: Path) -> None:
    with open_engine(tmp_path / "data", workers=1, api_burst=5, api_requests_per_minute=1) as engine:
        engine.users.add_user("rita", Role.REVIEWER, "test", password=PASSWORD, hasher=Argon2Hasher())
        app = create_app(engine)
        rita, _ = _browser(app, "rita")  # one page (/ui/cases) spent
        # Thumbnails of a page are part of it: they spend nothing (each is an audited view). Refused here (no case
        # to view face 7 under: 422), but never over the budget (429).
        thumbnails = [rita.get("/ui/faces/7/thumbnail").status_code for _ in range(10)]
        assert 429 not in thumbnails and set(thumbnails) <= {404, 422}
        pages = [rita.get("/ui/cases").status_code for _ in range(5)]
        assert pages == [200] * 4 + [429]
        rita.close()
