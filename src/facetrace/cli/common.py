"""What every command shares: an engine opened for one command, errors printed once, JSON printed alike."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from facetrace.core.errors import FacetraceError
from facetrace.engine import Engine, open_engine


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def engine_session(data: Path | None, pack: str | None, verbose: bool = False, **overrides: Any) -> Iterator[Engine]:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if pack:
        overrides["pack"] = pack
    try:
        engine = open_engine(
            data,
            on_wait=lambda message: typer.echo(message, err=True),  # another process writes to the data directory
            **{k: v for k, v in overrides.items() if v is not None},
        )
    except FacetraceError as exc:
        raise fail(str(exc)) from exc
    try:
        yield engine
    except FacetraceError as exc:
        raise fail(str(exc)) from exc
    finally:
        engine.close()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))
