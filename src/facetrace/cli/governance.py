"""Data governance: erasing a person on request, and purging what has outlived its retention."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from facetrace.cli.common import engine_session, fail, print_json
from facetrace.cli.options import DataOpt, JsonOpt, PackOpt
from facetrace.cli.render import jsonable
from facetrace.core.types import ErasurePreview
from facetrace.core.vocabulary import ErasureMatch, ErasureMode
from facetrace.engine import cli_actor
from facetrace.ingest.sources import read_uri


def erase(
    face: Annotated[
        list[int] | None,
        typer.Option(
            "--face",
            help="Erase this face id (repeatable). With --label or --photo: erase exactly these faces of the list a "
            "--dry-run showed (each must still be on it).",
        ),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Erase every face carrying this label (never a bystander).")
    ] = None,
    with_matches: Annotated[
        bool,
        typer.Option(
            "--with-matches",
            help="With --label: also list the faces matching a labelled face (false-match rate 5e-6); check them "
            "with --dry-run first.",
        ),
    ] = False,
    photo: Annotated[
        Path | None,
        typer.Option(
            "--photo",
            help="The requester's photo: erase every gallery face matching the requester's face in it (false-match "
            "rate 3e-5), or matching a face so found (5e-6). Bystanders in the photo are left alone.",
        ),
    ] = None,
    face_index: Annotated[
        int | None,
        typer.Option(
            "--face-index",
            help="With --photo: which face of the photo is the requester's (0-based, detector order); needed when "
            "no face clearly dominates the photo.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the faces the erasure would remove, and change nothing.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="The request this erasure answers (required).")] = "",
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase a person: faces, assets left without faces, embeddings, index entries and thumbnails are deleted, and
    the erased embeddings (and the requester's face) are kept on a suppression list (embeddings only) so ingest
    never stores them again. --dry-run lists what would go, first. Prints the receipt as JSON."""
    if (label is not None) + (photo is not None) > 1 or not (face or label is not None or photo is not None):
        raise fail("give --face, --label or --photo (with --label or --photo, --face confirms listed faces)")
    if with_matches and label is None:
        raise fail("--with-matches goes with --label")
    if face_index is not None and photo is None:
        raise fail("--face-index goes with --photo (which face of the requester's photo is theirs)")
    if not dry_run and not reason.strip():
        raise fail("--reason is required: say which request this erasure answers")
    if dry_run and face and (label is not None or photo is not None):
        raise fail("--dry-run lists the request's faces: leave out --face")
    actor = cli_actor()
    with engine_session(data, pack, workers=1) as engine:
        erasure = engine.erasure
        if dry_run:
            if photo is not None:
                preview = erasure.preview_photo(actor, read_uri(str(photo)), str(photo), face_index=face_index)
            elif label is not None:
                preview = erasure.preview_person(actor, label, with_matches=with_matches)
            else:
                preview = erasure.preview_faces(actor, face or [])
            if as_json:
                print_json(preview_json(preview))
            else:
                typer.echo(format_preview(preview, photo=photo, label=label, with_matches=with_matches))
            return
        if photo is not None:
            receipt = erasure.erase_by_photo(
                actor, read_uri(str(photo)), str(photo), reason, face_index=face_index, face_ids=face
            )
        elif label is not None:
            receipt = erasure.erase_person(actor, label, reason, with_matches=with_matches, face_ids=face)
        else:
            receipt = erasure.erase_faces(actor, face or [], reason)
    print_json(jsonable(receipt))


def preview_json(preview: ErasurePreview) -> dict[str, Any]:
    """A preview as JSON: what would go and why, never the requester's embedding."""
    out: dict[str, Any] = jsonable(preview)
    out.pop("requester_embedding", None)
    out["face_ids"] = list(preview.face_ids)
    return out


def format_preview(
    preview: ErasurePreview, *, photo: Path | None = None, label: str | None = None, with_matches: bool = False
) -> str:
    """The preview as lines: the request, the thresholds, one line per face, and the command that erases them."""
    if preview.mode == ErasureMode.PROBE:
        box = preview.requester_box
        where = f", box ({box.x1:.0f}, {box.y1:.0f}, {box.x2:.0f}, {box.y2:.0f})" if box else ""
        head = (
            f"by photo {preview.subject}: the requester's face is face {preview.requester_face_index} of "
            f"{preview.requester_faces}{where}; the other faces of the photo are left alone"
        )
    elif preview.mode == ErasureMode.PERSON:
        head = f"by label {preview.subject!r}" + (" with the faces matching them" if with_matches else "")
    else:
        head = f"by face ids {preview.subject}"
    lines = [f"erasure preview, nothing erased: {head}"]
    if preview.min_similarity is not None:
        lines.append(
            f"listed: similarity >= {preview.min_similarity:.3f} to the requester's face (false-match rate "
            f"{preview.false_match_rate:g})"
        )
    if preview.linked_min_similarity is not None:
        lines.append(
            f"{'and' if preview.min_similarity is not None else 'listed:'} similarity >= "
            f"{preview.linked_min_similarity:.3f} to a face listed (false-match rate "
            f"{preview.linked_false_match_rate:g}, one step)"
        )
    for c in preview.candidates:
        if c.found_by == ErasureMatch.PHOTO:
            why = f"similarity {c.similarity:.3f} to the requester's face"
        elif c.found_by == ErasureMatch.LINKED:
            why = f"similarity {c.linked_similarity:.3f} to listed face {c.linked_to}"
            if c.similarity is not None:
                why += f" ({c.similarity:.3f} to the requester's face)"
        else:
            why = "labelled" if c.found_by == ErasureMatch.LABEL else "named by id"
        lines.append(f"  face {c.face_id:<8} {c.label or '(no label)':<24} {why}  {c.asset_uri}")
    count = len(preview.candidates)
    lines.append(f"{count} face(s) would be erased" + (" (and the requester's face suppressed)" if photo else ""))
    if count and (photo is not None or label is not None):
        request = (
            f"--photo {shlex.quote(str(photo))}"
            if photo is not None
            else f"--label {shlex.quote(label or '')}" + (" --with-matches" if with_matches else "")
        )
        if preview.requester_face_index is not None:
            request += f" --face-index {preview.requester_face_index}"
        faces = " ".join(f"--face {face_id}" for face_id in preview.face_ids)
        lines.append(
            "to erase exactly these (leave out any face that is not the person's): "
            f"facetrace erase {request} {faces} --reason ..."
        )
    return "\n".join(lines)


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
