"""Options every command shares (--data, --pack, --json, --verbose): defined once, so they read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data", envvar="FACETRACE_DATA", help="Data directory (catalog, index, thumbnails).", show_default=False
    ),
]
PackOpt = Annotated[
    str | None, typer.Option("--pack", envvar="FACETRACE_PACK", help="Model pack id or folder (default: built-in).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")]
