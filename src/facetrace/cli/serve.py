"""`facetrace serve`: the HTTP API and web UI over one engine (the server extra), or one GET answered in-process."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from facetrace.cli.common import MISSING_EXTRA, engine_session, fail, print_json
from facetrace.cli.options import DataOpt, JsonOpt, PackOpt, VerboseOpt


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    get: Annotated[
        str | None,
        typer.Option(
            "--get",
            help="Answer one GET request for this path in-process (no port opened), print the status and body, "
            "and exit: e.g. --get /api/v1/health.",
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="FACETRACE_API_KEY", help="API key sent with --get.")
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs). Every route but /api/v1/health needs an API key: create the first
    administrator with `facetrace users create-admin NAME` (which creates the data directory; serve refuses one that
    does not exist). With --json, --get prints {"status", "reason", "body"} and errors are JSON objects."""
    try:
        from facetrace.server import serving
    except ImportError as exc:
        raise fail(f"the server needs its extra: pip install 'facetrace[server]' ({exc})", error=MISSING_EXTRA) from exc
    with engine_session(data, pack, verbose, workers=1) as engine:
        if get is not None:
            response = serving.get_once(engine, get, api_key)
            if as_json:
                print_json({"status": response.status_code, "reason": response.reason, "body": _body(response.body)})
            else:
                typer.echo(f"{response.status_code} {response.reason}")
                typer.echo(response.body)
            if response.status_code >= 400:
                raise typer.Exit(1)
            return
        for line in serving.addresses(host, port):
            typer.echo(line, err=True)  # where to go, before uvicorn takes the terminal
        serving.serve(engine, host, port, log_level="info" if verbose else "warning")


def _body(text: str) -> Any:
    """The response body as JSON where it is JSON, else as text."""
    try:
        return json.loads(text)
    except ValueError:
        return text
