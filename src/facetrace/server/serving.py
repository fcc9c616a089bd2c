"""Running the app: on a port with uvicorn, or one request in-process (`facetrace serve --get PATH`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import uvicorn

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
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        app.state.jobs.stop(JOB_STOP_TIMEOUT_S)


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
