"""Data governance: erasing a person on request, and purging what has outlived its retention."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetrace.cli.common import engine_session, fail, print_json
from facetrace.cli.options import DataOpt, JsonOpt, PackOpt
from facetrace.cli.render import jsonable
from facetrace.engine import cli_actor
from facetrace.ingest.sources import read_uri


def erase(
    face: Annotated[list[int] | None, typer.Option("--face", help="Erase this face id (repeatable).")] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Erase every face carrying this label (never a bystander).")
    ] = None,
    photo: Annotated[
        Path | None,
        typer.Option(
            "--photo",
            help="The requester's photo: erase every gallery face matching one of its faces at the strict "
            "threshold (false-match rate 1e-6).",
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="The request this erasure answers (required).")] = "",
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase a person: faces, assets left without faces, embeddings, index entries and thumbnails are deleted, and
    the erased embeddings are kept on a suppression list (embeddings only) so ingest never stores them again.
    Prints the receipt as JSON."""
    chosen = [bool(face), label is not None, photo is not None]
    if sum(chosen) != 1:
        raise fail("give exactly one of --face, --label or --photo")
    if not reason.strip():
        raise fail("--reason is required: say which request this erasure answers")
    with engine_session(data, pack, workers=1) as engine:
        if face:
            receipt = engine.erasure.erase_faces(cli_actor(), face, reason)
        elif label is not None:
            receipt = engine.erasure.erase_person(cli_actor(), label, reason)
        elif photo is not None:
            receipt = engine.erasure.erase_by_photo(cli_actor(), read_uri(str(photo)), str(photo), reason)
        else:  # unreachable: exactly one was checked above
            raise fail("give exactly one of --face, --label or --photo")
    print_json(jsonable(receipt))


def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; change nothing.")] = False,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete every photo and face whose retention has ended (catalog rows, index entries, thumbnails), audited as
    one `purge` entry. Unlike erase, nothing goes on the suppression list. Prints the summary as JSON, with or
    without --json."""
    with engine_session(data, pack, workers=1) as engine:
        summary = engine.retention.purge(cli_actor(), dry_run=dry_run)
    print_json(jsonable(summary))
