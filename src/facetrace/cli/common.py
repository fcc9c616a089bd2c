"""What every command shares: an engine opened for one command, errors printed once, JSON printed alike.

Errors: without --json, `error: MESSAGE` on stderr; with --json, `{"error": {"code": CODE, "message": MESSAGE}}` on
stdout, the code from core's error tree (core/errors.py ERROR_CODES, the same the HTTP API answers with). Either way
the exit code is 2 (1 where a command says otherwise: a check that found a fault, an ingest whose every input failed).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from facetrace.core.errors import FacetraceError, error_code
from facetrace.engine import Engine, open_engine

# Codes of errors the command line finds itself (the rest come from core's error tree).
USAGE = "usage"  # the command line itself is wrong: an unknown option, a missing argument (click's usage errors)
INVALID_REQUEST = "invalid_request"  # the options are well-formed but cannot be done as asked
INTERNAL = "internal_error"  # a fault of facetrace's own (its traceback goes to stderr)
MISSING_EXTRA = "missing_extra"  # the command needs an optional extra that is not installed
ALL_INPUTS_FAILED = "all_inputs_failed"  # a run read inputs and every one failed (exit 1, beside the run's summary)


# Whether the command line being run was given --json: set by the root command (JsonErrorsGroup) for one run.
_JSON_MODE: ContextVar[bool] = ContextVar("facetrace_cli_json", default=False)


def json_requested() -> bool:
    """Whether the running command line was given --json (its errors are then printed as JSON on stdout)."""
    return _JSON_MODE.get()


def print_error(code: str, message: str) -> None:
    if json_requested():
        print_json({"error": {"code": code, "message": message}})
    else:
        typer.echo(f"error: {message}", err=True)


def fail(message: str, code: int = 2, *, error: str = INVALID_REQUEST) -> typer.Exit:
    """Print an error the command found (as JSON with --json) and return the Exit to raise."""
    print_error(error, message)
    return typer.Exit(code)


def fail_on(exc: FacetraceError, code: int = 2) -> typer.Exit:
    """Print a facetrace error with its code and return the Exit to raise."""
    return fail(str(exc), code, error=error_code(exc))


@contextmanager
def engine_session(
    data: Path | None, pack: str | None, verbose: bool = False, *, create: bool = False, **overrides: Any
) -> Iterator[Engine]:
    """An engine for one command. create=False (commands that read) refuses a data directory that does not exist or
    holds no catalog; create=True (ingest, users create-admin) makes one."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if pack:
        overrides["pack"] = pack
    try:
        engine = open_engine(
            data,
            create=create,
            on_wait=lambda message: typer.echo(message, err=True),  # another process writes to the data directory
            **{k: v for k, v in overrides.items() if v is not None},
        )
    except FacetraceError as exc:
        raise fail_on(exc) from exc
    try:
        yield engine
    except FacetraceError as exc:
        raise fail_on(exc) from exc
    finally:
        engine.close()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


class JsonErrorsGroup(TyperGroup):
    """The root command: with --json anywhere on the command line, errors the command's own code never sees (usage
    errors, unexpected faults) are printed as the JSON error object too, and the exit code still says failure."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or "--json" not in argv:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        token = _JSON_MODE.set(True)
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)
        except typer.Abort:
            _print_json_error("aborted", "aborted")
            sys.exit(1)
        except Exception as exc:
            if _is_usage_error(exc):
                _print_json_error(USAGE, exc.format_message())  # type: ignore[attr-defined]
                sys.exit(exc.exit_code)  # type: ignore[attr-defined]
            # The last resort: a program reading stdout still gets an object; the traceback goes to stderr.
            traceback.print_exc(file=sys.stderr)
            _print_json_error(INTERNAL, f"{type(exc).__name__}: {exc}")
            sys.exit(1)
        finally:
            _JSON_MODE.reset(token)
        # Without standalone mode click returns the exit code of a typer.Exit, and a command's own value otherwise.
        sys.exit(result if isinstance(result, int) else 0)


def _is_usage_error(exc: Exception) -> bool:
    """click's ClickException (an unknown option, a missing argument, a bad value), whichever click typer runs on:
    typer.BadParameter is one, so its bases name the class."""
    click_exception = next(c for c in type.mro(typer.BadParameter) if c.__name__ == "ClickException")
    return isinstance(exc, click_exception)


def _print_json_error(code: str, message: str) -> None:
    print_json({"error": {"code": code, "message": message}})
