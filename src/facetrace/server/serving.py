"""Running the app: on a port with uvicorn, or one request in-process (`facetrace serve --get PATH`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from facetrace.engine import Engine
from facetrace.server.app import create_app


@dataclass(frozen=True)
class OneResponse:
    status_code: int
    reason: str
    body: str


# How long shutdown waits for a running ingest job to store its current batch: a batch of 32 photos took about 7 s
# (4.6 photos/s measured with one worker on the shared, contended 2-core machine); 60 s leaves room for slower hosts.
JOB_STOP_TIMEOUT_S = 60.0


def serve(engine: Engine, host: str, port: int, *, log_level: str = "warning") -> None:
    app = create_app(engine)
    try:
        uvicorn.Server(server_config(app, engine, host, port, log_level=log_level)).run()
    finally:
        app.state.jobs.stop(JOB_STOP_TIMEOUT_S)


def addresses(host: str, port: int) -> list[str]:
    """What `facetrace serve` prints on start: where the web UI, the API and its documentation are."""
    shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "") else host)
    base = f"http://{shown}:{port}"
    return [
        f"facetrace web UI:  {base}/ui/",
        f"facetrace API:     {base}/api/v1 (OpenAPI documentation at {base}/docs)",
        "Stop with Ctrl+C.",
    ]


def server_config(app: FastAPI, engine: Engine, host: str, port: int, *, log_level: str = "warning") -> uvicorn.Config:
    """How uvicorn serves the app: on host:port, believing forwarded headers only from the trusted proxies."""
    proxy_headers, forwarded_allow_ips = proxy_options(engine.settings.trusted_proxies)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def proxy_options(trusted_proxies: tuple[str, ...]) -> tuple[bool, str | None]:
    """uvicorn's (proxy_headers, forwarded_allow_ips): X-Forwarded-For and -Proto are believed only from the
    configured proxies. uvicorn's own default believes them from 127.0.0.1, so anyone on the host could spoof the
    client address that the sign-in lockout counts and the audit log records; with no proxy they are ignored."""
    if not trusted_proxies:
        return False, None
    return True, ",".join(trusted_proxies)


def get_once(engine: Engine, path: str, api_key: str | None = None) -> OneResponse:
    """Answer one GET through the whole app (auth, errors, audit) without opening a port."""
    with warnings.catch_warnings():
        # starlette's TestClient prefers httpx2 and warns about httpx, which works as before.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient

    headers = {"X-API-Key": api_key} if api_key else {}
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        response = client.get(path, headers=headers)
    return OneResponse(response.status_code, response.reason_phrase, response.text)
