"""The gallery: photos in (ingest), faces searched and compared, and the catalog and index kept in agreement."""

from __future__ import annotations

import re
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from facetrace.cli.common import ALL_INPUTS_FAILED, engine_session, fail, print_json
from facetrace.cli.options import DataOpt, JsonOpt, PackOpt, VerboseOpt
from facetrace.cli.progress import count_inputs, ingest_bar
from facetrace.cli.render import (
    format_comparison,
    format_probe_result,
    jsonable,
    search_outcomes_json,
    trim_outcome,
)
from facetrace.core.types import MAX_TOP_K, ProbeOutcome
from facetrace.core.vocabulary import MinStrength, WalkSkip
from facetrace.engine import Engine
from facetrace.vision.annotate import MarkedFace, annotate

index_app = typer.Typer(help="The vector index (derived from the catalog, rebuildable).", no_args_is_help=True)


def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Folders (recursive), image files, or @list.txt files.")
    ] = None,
    manifest: Annotated[
        list[Path] | None,
        typer.Option(
            "--manifest",
            "-m",
            help="CSV/JSONL manifest with uri, source_page, captured_at, label, legal_basis, face_index or face_box "
            "(which face the label names) and any extra columns.",
        ),
    ] = None,
    warc: Annotated[
        list[Path] | None,
        typer.Option(
            "--warc",
            help="A web archive (.warc or .warc.gz; repeatable). Its images are ingested with their URL, crawl date "
            "and the archived page that showed them; nothing is fetched from the web.",
        ),
    ] = None,
    opt_out: Annotated[
        Path | None,
        typer.Option(
            "--opt-out",
            help="A file of domains and URL prefixes (one a line, # comments) whose images are never ingested: an "
            "image is skipped unread if its URL or a page that showed it matches. Applies to every source.",
        ),
    ] = None,
    retain_days: Annotated[
        int | None,
        typer.Option(
            "--retain-days",
            min=0,
            help="Keep these photos and their faces this many days, then `facetrace purge` deletes them (a "
            "manifest's retain_days column wins; default: the retention_days setting, else until erased).",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    threads: Annotated[int | None, typer.Option(help="Inference threads per worker.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images analysed together per model call.")] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Analyse on Ray actors instead of local worker processes: local (start Ray here with all cores), "
            "auto, host:port or ray://host:port. This process still reads the sources and writes the catalog and "
            "index; every node needs facetrace and the model pack. Needs the ray extra.",
        ),
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Add photos to the catalog and index, creating the data directory if it does not exist. Re-running is safe:
    images already ingested (same content hash) are skipped, so an interrupted ingest resumes where it stopped.
    Unreadable files are reported and skipped; if every input failed (none stored, none already known), the run
    exits 1."""
    if not paths and not manifest and not warc:
        raise fail("give at least one folder, file, @list, --manifest or --warc")
    overrides = {"workers": workers, "threads": threads, "batch_size": batch_size, "ray_address": ray}
    with engine_session(data, pack, verbose, create=True, **overrides) as engine, ExitStack() as stack:
        bar = None
        if not as_json and sys.stderr.isatty():
            total = count_inputs(paths or [], manifest or [], warc or [])
            bar = stack.enter_context(ingest_bar(total))
        summary = engine.ingest.run(
            paths or [],
            manifests=manifest or [],
            warcs=warc or [],
            opt_out=opt_out,
            progress=bar,
            retain_days=retain_days,
        )
    # Every input failed: something was read, nothing was stored or already known. (A run that finds nothing to read,
    # an empty folder, has nothing failed and exits 0.)
    all_failed = summary.errors > 0 and summary.images_added == 0 and summary.images_skipped == 0
    failure = f"every input failed: {summary.errors} of {summary.images_seen} images could not be ingested"
    if as_json:
        payload = jsonable(summary)
        if all_failed:
            payload["error"] = {"code": ALL_INPUTS_FAILED, "message": failure}
        print_json(payload)
        if all_failed:
            raise typer.Exit(1)
        return
    typer.echo(
        f"run {summary.run_id}: {summary.images_seen} images seen, {summary.images_added} added, "
        f"{summary.images_skipped} already known, {summary.faces_added} faces, {summary.errors} errors"
    )
    skipped = {key: n for key, n in summary.source_counts.items() if key.startswith(SKIP_PREFIX)}
    others = {key: n for key, n in summary.source_counts.items() if key not in skipped}
    if skipped:
        typer.echo("  passed over in folders: " + ", ".join(_walk_skip(key, n) for key, n in skipped.items()))
    if others:
        typer.echo("  sources: " + ", ".join(f"{n} {reason}" for reason, n in others.items()))
    if summary.unattributed_labels:
        typer.echo(
            f"  {summary.unattributed_labels} labelled photo(s) with no face the label clearly names (several faces, "
            "none dominant, or the face named not found): their label went to no face; give face_index or face_box"
        )
    for message in summary.error_messages[:20]:
        typer.echo(f"  skipped: {message}", err=True)
    if summary.errors > 20:
        typer.echo(f"  … and {summary.errors - 20} more (see the catalog's ingest_errors)", err=True)
    if all_failed:
        typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(1)


SKIP_PREFIX = "skipped_"
_WALK_SKIPS = {
    WalkSkip.NOT_AN_IMAGE: "not an image by its suffix",
    WalkSkip.UNSUPPORTED_FORMAT: "in a photo format not taken (camera RAW, SVG, PSD, JPEG XL...)",
    WalkSkip.HIDDEN: "hidden (name starts with '.')",
    WalkSkip.BROKEN_LINK: "a broken link",
    WalkSkip.LINK_LOOP: "a link looping back",
    WalkSkip.UNREADABLE: "unreadable",
}


def _walk_skip(key: str, count: int) -> str:
    word = key.removeprefix(SKIP_PREFIX)
    why = _WALK_SKIPS[WalkSkip(word)] if word in set(WalkSkip) else word
    return f"{count} {why}"


def search(
    probes: Annotated[
        list[Path],
        typer.Argument(
            help="Probe photo(s). PATH#N searches only face N of that photo (0-based, in detector order; "
            "a file whose name really ends in #N is taken as that file)."
        ),
    ],
    top_k: Annotated[
        int | None,
        typer.Option("--top-k", "-k", min=1, max=MAX_TOP_K, help="Candidates per probe face (1-1000)."),
    ] = None,
    face: Annotated[
        list[int] | None,
        typer.Option(
            "--face",
            min=0,
            help="Search only face N of the probe (0-based). Given once: for every probe without its own PATH#N; "
            "given once per probe photo: for each in order.",
        ),
    ] = None,
    fuse: Annotated[
        bool, typer.Option("--fuse", help="Fuse all probe photos into one template of one person.")
    ] = False,
    allow_mixed_people: Annotated[
        bool,
        typer.Option(
            "--allow-mixed-people",
            help="With --fuse: fuse the photos even when their faces do not look like one person (they are refused "
            "otherwise, naming the odd photo); the result still says which photos were odd.",
        ),
    ] = False,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="Why this search is made; recorded in the audit log.")
    ] = None,
    min_strength: Annotated[
        MinStrength,
        typer.Option(
            "--min-strength",
            help="Show only candidates at least this strong: strong, moderate (strong and moderate leads) or weak "
            "(every candidate). The audit log records every candidate found.",
        ),
    ] = MinStrength.WEAK,
    annotate_to: Annotated[
        Path | None,
        typer.Option(
            "--annotate",
            help="Write the probe photo, downscaled, as JPEG to this path with every face's numbered box (the "
            "numbers --face and PATH#N take) and quality flags, the searched faces in yellow. One probe photo only.",
        ),
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Search the gallery with every face of each probe photo. Each candidate comes with its false-match rate for
    this gallery's size: a high similarity in a large gallery can still be a stranger. A candidate from the probe's
    own photo, or likely a copy of it, is marked. Each probe gets its own outcome: a photo that cannot be read or
    holds no face is reported and the others are searched (the exit code is 2 only if every probe failed). Every
    search is recorded in the audit log under your user name (cases with a stated purpose and review: the API and
    web UI)."""
    paths, faces = _probe_faces(probes, face or [])
    if allow_mixed_people and not fuse:
        raise fail("--allow-mixed-people goes with --fuse")
    if annotate_to is not None and (fuse or len(paths) != 1):
        raise fail("--annotate draws one probe photo: give one probe, without --fuse")
    with engine_session(data, pack, verbose, workers=1) as engine:
        if fuse:
            fused = engine.search.fused(
                paths, top_k=top_k, faces=faces, allow_mixed=allow_mixed_people, purpose=purpose
            )
            outcomes = [ProbeOutcome(fused.probe_source, results=(fused,))]
        else:
            outcomes = engine.search.files(paths, top_k=top_k, faces=faces, purpose=purpose)
        if annotate_to is not None and not outcomes[0].failed:
            _annotate(engine, paths[0], outcomes[0], annotate_to)
    failed = [o for o in outcomes if o.failed]
    every_probe_failed = len(failed) == len(outcomes)
    outcomes = [trim_outcome(o, min_strength) for o in outcomes]
    if as_json:
        payload: dict[str, Any] = search_outcomes_json(outcomes)
        if every_probe_failed:
            payload["error"] = {
                "code": failed[0].error_code if len(failed) == 1 else "all_probes_failed",
                "message": "; ".join(o.error_message or "" for o in failed),
            }
        print_json(payload)
    else:
        shown = [format_probe_result(r) for o in outcomes for r in o.results]
        if shown:
            typer.echo("\n\n".join(shown))
        for outcome in failed:
            typer.echo(f"error: {outcome.error_message}", err=True)
    if every_probe_failed:
        raise typer.Exit(2)


def _annotate(engine: Engine, probe: Path, outcome: ProbeOutcome, out: Path) -> None:
    """The probe photo with every face numbered, those searched picked, written as JPEG to out."""
    data = probe.read_bytes()
    image = engine.search.analyze(data, str(probe))
    searched = {result.probe_face_index for result in outcome.results}
    marks = [
        MarkedFace(str(number), face.detection.box, face.quality.flags, number in searched)
        for number, face in enumerate(image.faces)
    ]
    try:
        out.write_bytes(annotate(data, str(probe), marks, max_pixels=engine.settings.max_image_pixels))
    except OSError as exc:
        raise fail(f"cannot write the annotated probe to {out}: {exc}") from exc


def _probe_faces(probes: list[Path], face: list[int]) -> tuple[list[Path], list[int | None]]:
    """The probe paths and the face chosen in each (None: every face, or the main face when fused), from PATH#N
    arguments and --face options."""
    parsed = [_split_face(probe) for probe in probes]
    if len(face) > 1 and len(face) != len(probes):
        raise fail(
            f"--face is given once (for every probe) or once per probe photo, in order: {len(face)} given for "
            f"{len(probes)} photos"
        )
    faces: list[int | None] = []
    for number, (_, own) in enumerate(parsed):
        option = face[number] if len(face) > 1 else (face[0] if face else None)
        if own is not None and len(face) > 1:
            raise fail(f"{probes[number]} chooses its face with #{own} and --face too: give one of them")
        faces.append(own if own is not None else option)
    return [path for path, _ in parsed], faces


def _split_face(probe: Path) -> tuple[Path, int | None]:
    """PATH#N as (PATH, N); an existing file whose name ends in #N stays that file."""
    found = re.fullmatch(r"(.+)#(\d+)", str(probe))
    if found is None or probe.exists():
        return probe, None
    return Path(found.group(1)), int(found.group(2))


def compare(
    a: Annotated[Path, typer.Argument(help="First photo (its largest face, or --face-a).")],
    b: Annotated[Path, typer.Argument(help="Second photo (its largest face, or --face-b).")],
    face_a: Annotated[
        int | None, typer.Option("--face-a", min=0, help="Compare face N of the first photo (0-based).")
    ] = None,
    face_b: Annotated[
        int | None, typer.Option("--face-b", min=0, help="Compare face N of the second photo (0-based).")
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """1:1 verification: are these the same person? Prints similarity and the false-match rate of that score."""
    with engine_session(data, pack, workers=1) as engine:
        result = engine.search.compare_files(a, b, face_a=face_a, face_b=face_b)
    if as_json:
        print_json(jsonable(result))
    else:
        typer.echo(format_comparison(result))


def check(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Add faces missing from the index, drop orphans, put back vectors that disagree with the catalog, "
            "and make missing thumbnails again from their photos.",
        ),
    ] = False,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample", min=1, help="Compare the vectors of this many random faces with the catalog (default: all)."
        ),
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check that the catalog, the index and the thumbnails agree (exit code 1 if they do not and --repair was not
    given, or if --repair could not mend everything)."""
    with engine_session(data, pack, workers=1) as engine:
        report = engine.index.check(repair=repair, sample=sample)
    if as_json:
        print_json(jsonable(report) | {"consistent": report.consistent})
    else:
        typer.echo(
            f"model {report.model_id}: {report.catalog_faces} faces in catalog, {report.index_entries} in index, "
            f"{report.missing_from_index} missing from index, {report.orphaned_in_index} orphaned; "
            f"{report.vectors_mismatched} of {report.vectors_checked} vectors disagree with the catalog; "
            f"{report.thumbnails_missing} of {report.thumbnails_checked} thumbnails missing"
            + (f" (repaired; {report.thumbnails_restored} thumbnails made again)" if report.repaired else "")
        )
        if report.index is not None:
            typer.echo(_index_line(report.index))
        for problem in report.unrepaired:
            typer.echo(f"not repaired: {problem}", err=True)
    if not report.consistent:
        raise typer.Exit(1)


def _index_line(described: dict[str, Any]) -> str:
    """The index's structure and, for a tuned approximate one, its measured operating point, in one line."""
    line = f"index: {described.get('structure')}"
    point = described.get("operating_point")
    if point:
        recall = point.get("recall_at_1")
        line += (
            f"; operating point ({point.get('source')}, at {point.get('count', '?')} faces): nprobe {point['nprobe']}, "
            f"rerank {point.get('rerank', '?')}, recall@1 {'?' if recall is None else recall} "
            f"(target {point.get('target_recall')}), single-query p50 {point.get('p50_ms')} ms on "
            f"{point.get('threads', '?')} thread(s)"
        )
    return line


def stats(data: DataOpt = None, pack: PackOpt = None, as_json: JsonOpt = False) -> None:
    """What the data directory holds and where its catalog and index live. Prints JSON, with or without --json."""
    with engine_session(data, pack, workers=1) as engine:
        print_json(jsonable(engine.stats()))


@index_app.command("rebuild")
def index_rebuild(data: DataOpt = None, pack: PackOpt = None, as_json: JsonOpt = False) -> None:
    """Recreate the index from the catalog's stored embeddings (after corruption, or to change structure)."""
    with engine_session(data, pack, workers=1) as engine:
        count = engine.index.rebuild()
    if as_json:
        print_json({"faces_indexed": count})
    else:
        typer.echo(f"index rebuilt: {count} faces")
