"""Starting the server tells a person where to go, its address leads to the web UI, and it runs on the fast HTTP
parser and event loop its extra installs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from facetrace.engine import open_engine
from facetrace.server.app import create_app
from facetrace.server.serving import addresses, server_config


def test_the_servers_address_leads_to_the_web_ui(tmp_path: Path) -> None:
    with open_engine(tmp_path / "data", workers=1) as engine, TestClient(create_app(engine)) as client:
        landing = client.get("/", follow_redirects=False)
        assert landing.status_code == 307 and landing.headers["location"] == "/ui/"
        signed_out = client.get("/", follow_redirects=True)
        assert signed_out.status_code == 200 and "/ui/login" in str(signed_out.url)


def test_serve_prints_where_the_ui_and_the_api_are() -> None:
    lines = addresses("127.0.0.1", 8000)
    assert lines[0].endswith("http://127.0.0.1:8000/ui/") and "http://127.0.0.1:8000/api/v1" in lines[1]
    assert "http://127.0.0.1:8000/docs" in lines[1]
    assert "http://127.0.0.1:8000/ui/" in addresses("0.0.0.0", 8000)[0]  # all addresses: this machine's works
    assert "http://[::1]:9000/ui/" in addresses("::1", 9000)[0]


def test_the_server_parses_http_with_httptools_on_uvloop(tmp_path: Path) -> None:
    """The server extra installs both; uvicorn's "auto" takes them, which cut the CPU a search costs the server
    (docs/benchmarks.md, "The HTTP layer"). A missing one would fall back silently to h11 and asyncio."""
    with open_engine(tmp_path / "data", workers=1) as engine:
        config = server_config(create_app(engine), engine, "127.0.0.1", 8000)
        config.load()
        assert config.http_protocol_class.__module__ == "uvicorn.protocols.http.httptools_impl"
        loop_factory = config.get_loop_factory()
        assert loop_factory is not None and loop_factory.__module__.startswith("uvloop")
