"""The command line: thin commands over Engine verbs. Errors are translated here, once."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from facetrace.cli.render import format_comparison, format_probe_result, jsonable, probe_result_json
from facetrace.core.errors import FacetraceError
from facetrace.engine import Engine, add_model_pack, cli_actor, list_model_packs, open_engine, verify_model_pack
from facetrace.ingest.runner import IngestProgress
from facetrace.ingest.sources import read_uri

app = typer.Typer(
    help="facetrace: self-hosted, accountable face search. Ingest photos you lawfully hold, search them with a "
    "probe photo, and read every score as a false-match rate for your gallery's size.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="The vector index (derived from the catalog, rebuildable).", no_args_is_help=True)
models_app = typer.Typer(
    help="Model packs: which weights embed faces, their licences and checks.", no_args_is_help=True
)
eval_app = typer.Typer(
    help="Accuracy on public benchmarks, through the same code path users run.", no_args_is_help=True
)
app.add_typer(index_app, name="index")
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")
users_app = typer.Typer(
    help="Users, roles (admin, investigator, reviewer, auditor) and API keys.", no_args_is_help=True
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")

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


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _engine(data: Path | None, pack: str | None, verbose: bool = False, **overrides: Any) -> Iterator[Engine]:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if pack:
        overrides["pack"] = pack
    try:
        engine = open_engine(data, **{k: v for k, v in overrides.items() if v is not None})
    except FacetraceError as exc:
        raise _fail(str(exc)) from exc
    try:
        yield engine
    except FacetraceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        engine.close()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Folders (recursive), image files, or @list.txt files.")
    ] = None,
    manifest: Annotated[
        list[Path] | None,
        typer.Option(
            "--manifest",
            "-m",
            help="CSV/JSONL manifest with uri, source_page, captured_at, label, legal_basis and any extra columns.",
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
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    threads: Annotated[int | None, typer.Option(help="Inference threads per worker.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images analysed together per model call.")] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Add photos to the catalog and index. Re-running is safe: images already ingested (same content hash) are
    skipped, so an interrupted ingest resumes where it stopped. Unreadable files are reported and skipped."""
    if not paths and not manifest and not warc:
        raise _fail("give at least one folder, file, @list, --manifest or --warc")
    with _engine(data, pack, verbose, workers=workers, threads=threads, batch_size=batch_size) as engine:
        summary = engine.ingest(
            paths or [],
            manifests=manifest or [],
            warcs=warc or [],
            opt_out=opt_out,
            progress=_progress_printer(as_json),
        )
    if as_json:
        _print_json(jsonable(summary))
        return
    typer.echo(
        f"run {summary.run_id}: {summary.images_seen} images seen, {summary.images_added} added, "
        f"{summary.images_skipped} already known, {summary.faces_added} faces, {summary.errors} errors"
    )
    if summary.source_counts:
        typer.echo("  sources: " + ", ".join(f"{n} {reason}" for reason, n in summary.source_counts.items()))
    for message in summary.error_messages[:20]:
        typer.echo(f"  skipped: {message}", err=True)
    if summary.errors > 20:
        typer.echo(f"  … and {summary.errors - 20} more (see the catalog's ingest_errors)", err=True)


def _progress_printer(quiet: bool) -> Callable[[IngestProgress], None] | None:
    if quiet or not sys.stderr.isatty():
        return None

    def show(p: IngestProgress) -> None:
        sys.stderr.write(
            f"\r{p.images_seen} seen, {p.images_added} added, {p.images_skipped} known, "
            f"{p.faces_added} faces, {p.errors} errors"
        )
        sys.stderr.flush()

    return show


@app.command()
def search(
    probes: Annotated[list[Path], typer.Argument(help="Probe photo(s).")],
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="Candidates per probe face.")] = None,
    face: Annotated[int | None, typer.Option("--face", help="Search only face N of the probe (0-based).")] = None,
    fuse: Annotated[
        bool, typer.Option("--fuse", help="Fuse all probe photos into one template of one person.")
    ] = False,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="Why this search is made; recorded in the audit log.")
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Search the gallery with every face of each probe photo. Each candidate comes with its false-match rate for
    this gallery's size: a high similarity in a large gallery can still be a stranger. Every search is recorded in
    the audit log under your user name (cases with a stated purpose and review: the API and web UI)."""
    with _engine(data, pack, verbose, workers=1) as engine:
        if fuse:
            results = [engine.search_fused(probes, top_k=top_k, purpose=purpose)]
        else:
            results = [r for p in probes for r in engine.search_file(p, top_k=top_k, face_index=face, purpose=purpose)]
    if as_json:
        _print_json({"results": [probe_result_json(r) for r in results]})
    else:
        typer.echo("\n\n".join(format_probe_result(r) for r in results))


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="First photo (its largest face).")],
    b: Annotated[Path, typer.Argument(help="Second photo (its largest face).")],
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """1:1 verification: are these the same person? Prints similarity and the false-match rate of that score."""
    with _engine(data, pack, workers=1) as engine:
        result = engine.compare_files(a, b)
    if as_json:
        _print_json(jsonable(result))
    else:
        typer.echo(format_comparison(result))


@app.command()
def check(
    repair: Annotated[bool, typer.Option("--repair", help="Add faces missing from the index, drop orphans.")] = False,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check that the catalog and the index agree (exit code 1 if they do not and --repair was not given)."""
    with _engine(data, pack, workers=1) as engine:
        report = engine.check(repair=repair)
    if as_json:
        _print_json(jsonable(report) | {"consistent": report.consistent})
    else:
        typer.echo(
            f"model {report.model_id}: {report.catalog_faces} faces in catalog, {report.index_entries} in index, "
            f"{report.missing_from_index} missing from index, {report.orphaned_in_index} orphaned"
            + (" (repaired)" if report.repaired else "")
        )
    if not report.consistent and not repair:
        raise typer.Exit(1)


@app.command()
def stats(data: DataOpt = None, pack: PackOpt = None) -> None:
    """What the data directory holds."""
    with _engine(data, pack, workers=1) as engine:
        _print_json(jsonable(engine.stats()))


@app.command("cluster")
def cluster_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Photos or folders to cluster (default: every face in the catalog).")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="CSV path,identity (paths relative to the CSV): score the clustering of each image's largest face.",
        ),
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Group unknown faces into identities, conservatively: two people wrongly merged is worse than one person
    split, so a merge needs the whole of both groups to agree, at false-match rates of 1e-4 to 1e-5."""
    from facetrace.evaluation.clustering import score_clustering

    with _engine(data, pack, verbose, workers=1) as engine:
        faces, result = engine.cluster(paths or [])
    groups: dict[int, list[int]] = {}
    for position, label in enumerate(result.labels.tolist()):
        groups.setdefault(label, []).append(position)
    ordered = sorted(groups.values(), key=lambda members: (-len(members), members[0]))
    report = None
    if labels is not None:
        truth = _identities_by_path(labels)
        scored = [
            (i, truth[str(Path(f.source).resolve())])
            for i, f in enumerate(faces)
            if f.main_face and str(Path(f.source).resolve()) in truth
        ]
        if not scored:
            raise _fail(f"{labels}: none of its paths matches a clustered image")
        positions, identities = zip(*scored, strict=True)
        report = score_clustering(result.labels[list(positions)], list(identities), len(result.merges))
    if as_json:
        payload: dict[str, Any] = {
            "thresholds": jsonable(result.thresholds),
            "faces": len(faces),
            "clusters": [[jsonable(faces[i]) for i in members] for members in ordered],
            "merges": jsonable(result.merges),
        }
        if report is not None:
            payload["evaluation"] = report.to_dict()
        _print_json(payload)
        return
    typer.echo(f"{len(faces)} faces in {len(ordered)} clusters ({sum(len(m) > 1 for m in ordered)} with 2+ faces)")
    for number, members in enumerate(ordered[:50]):
        if len(members) < 2:
            break
        typer.echo(f"  cluster {number}: {len(members)} faces")
        for i in members[:5]:
            face = faces[i]
            typer.echo(f"    {face.source}" + (f"  face {face.face_id}" if face.face_id is not None else ""))
        if len(members) > 5:
            typer.echo(f"    … and {len(members) - 5} more")
    if report is not None:
        typer.echo(
            f"against {labels}: pairwise precision {report.pairwise_precision:.4f}, "
            f"pairwise recall {report.pairwise_recall:.4f}, BCubed F1 {report.bcubed_f1:.4f}"
        )


def _identities_by_path(manifest: Path) -> dict[str, str]:
    import csv

    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.DictReader(handle)
        if not rows.fieldnames or not {"path", "identity"} <= set(rows.fieldnames):
            raise _fail(f"{manifest}: the header must name the columns path and identity")
        return {str((manifest.parent / row["path"]).resolve()): row["identity"] for row in rows}


@index_app.command("rebuild")
def index_rebuild(data: DataOpt = None, pack: PackOpt = None) -> None:
    """Recreate the index from the catalog's stored embeddings (after corruption, or to change structure)."""
    with _engine(data, pack, workers=1) as engine:
        count = engine.rebuild_index()
    typer.echo(f"index rebuilt: {count} faces")


@models_app.command("list")
def models_list(data: DataOpt = None, as_json: JsonOpt = False) -> None:
    """Installed model packs with their licences. Packs not cleared for commercial use say so."""
    packs = list_model_packs(data)
    if as_json:
        _print_json(jsonable(packs))
        return
    for info in packs:
        use = "" if info.commercial_use else "  [NON-COMMERCIAL USE ONLY]"
        where = "built-in" if info.builtin else info.location
        typer.echo(f"{info.id}  ({info.embedding_dim}-d, {info.licence_spdx}){use}  {where}")
        typer.echo(f"    {info.name} {info.version}: {info.licence_summary} {info.licence_url}")
        if info.problem:
            typer.echo(f"    PROBLEM: {info.problem}")


@models_app.command("verify")
def models_verify(
    pack: Annotated[str | None, typer.Argument(help="Pack id or folder (default: the default pack).")] = None,
    data: DataOpt = None,
) -> None:
    """Check every file of a pack (sha256, graph shapes) and run each model once."""
    try:
        loaded = verify_model_pack(pack, data)
    except FacetraceError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{loaded.id}: ok ({loaded.embedding_dim}-d embeddings, licence {loaded.licence.spdx})")


@models_app.command("add")
def models_add(
    path: Annotated[Path, typer.Argument(help="A pack folder: manifest.json and the ONNX files it names.")],
    data: DataOpt = None,
) -> None:
    """Validate a model pack and copy it into the data directory; use it with --pack ID."""
    try:
        loaded = add_model_pack(path, data)
    except FacetraceError as exc:
        raise _fail(str(exc)) from exc
    note = "" if loaded.commercial_use else f" — licence {loaded.licence.spdx}: NOT for commercial use"
    typer.echo(f"added {loaded.id}{note}")


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _run_evaluation(command: str, ctx: typer.Context) -> None:
    from facetrace.evaluation.__main__ import main as evaluation_main

    raise typer.Exit(evaluation_main([command, *ctx.args]))


@eval_app.command("verify", context_settings=_PASS_THROUGH, add_help_option=False)
def eval_verify(ctx: typer.Context) -> None:
    """1:1 accuracy on a pairs CSV (path_a,path_b,same,fold): 10-fold accuracy, TAR@FAR, ROC. --help for options."""
    _run_evaluation("verify", ctx)


@eval_app.command("identify", context_settings=_PASS_THROUGH, add_help_option=False)
def eval_identify(ctx: typer.Context) -> None:
    """1:N on a manifest CSV (path,identity): rank-1, rank-10, FNIR at FPIR 1%. --help for options."""
    _run_evaluation("identify", ctx)


@eval_app.command("calibrate", context_settings=_PASS_THROUGH, add_help_option=False)
def eval_calibrate(ctx: typer.Context) -> None:
    """Measure a pack's impostor score distribution on a labelled manifest (writes calibration.json)."""
    _run_evaluation("calibrate", ctx)


@app.command()
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
    verbose: VerboseOpt = False,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs). Every route but /api/v1/health needs an API key: create the first
    administrator with `facetrace users create-admin NAME`."""
    try:
        from facetrace.server import serving
    except ImportError as exc:
        raise _fail(f"the server needs its extra: pip install 'facetrace[server]' ({exc})") from exc
    with _engine(data, pack, verbose, workers=1) as engine:
        if get is not None:
            response = serving.get_once(engine, get, api_key)
            typer.echo(f"{response.status_code} {response.reason}")
            typer.echo(response.body)
            if response.status_code >= 400:
                raise typer.Exit(1)
            return
        serving.serve(engine, host, port, log_level="info" if verbose else "warning")


@users_app.command("create-admin")
def users_create_admin(
    name: Annotated[str, typer.Argument(help="The administrator's user name.")],
    data: DataOpt = None,
    pack: PackOpt = None,
) -> None:
    """Create an administrator and print their API key, once: it is stored only as a hash. Whoever can run this
    command on the data directory is trusted as its operator (the action is audited as cli:<login>)."""
    with _engine(data, pack, workers=1) as engine:
        issued = engine.users.create_admin(name, cli_actor())
    typer.echo(f"created admin {issued.user.name}; API key (shown once, keep it safe):")
    typer.echo(issued.api_key)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", help="admin, investigator, reviewer or auditor.")],
    data: DataOpt = None,
    pack: PackOpt = None,
) -> None:
    """Add a user with a role and print their API key, once."""
    with _engine(data, pack, workers=1) as engine:
        issued = engine.users.add_user(name, role, cli_actor())
    typer.echo(f"added {issued.user.role} {issued.user.name}; API key (shown once, keep it safe):")
    typer.echo(issued.api_key)


@users_app.command("deactivate")
def users_deactivate(
    name: Annotated[str, typer.Argument(help="User name.")],
    data: DataOpt = None,
    pack: PackOpt = None,
) -> None:
    """Revoke every API key of a user and refuse their password; their cases, searches and reviews stay."""
    with _engine(data, pack, workers=1) as engine:
        engine.users.deactivate(name, cli_actor())
    typer.echo(f"deactivated {name}; all their API keys are revoked")


@users_app.command("list")
def users_list(data: DataOpt = None, pack: PackOpt = None, as_json: JsonOpt = False) -> None:
    """Users and their roles (never their keys)."""
    with _engine(data, pack, workers=1) as engine:
        found = engine.users.users()
    if as_json:
        _print_json(jsonable(found))
        return
    for user in found:
        typer.echo(f"{user.name}  {user.role}" + ("" if user.active else "  (inactive)"))


@audit_app.command("verify")
def audit_verify(data: DataOpt = None, pack: PackOpt = None, as_json: JsonOpt = False) -> None:
    """Recompute the audit log's hash chain. Exits 1 naming the first entry (seq) that was edited, deleted or
    reordered. Keep the printed head hash elsewhere: deleting the newest entries can only be seen against it."""
    with _engine(data, pack, workers=1) as engine:
        report = engine.audit.verify()
    if as_json:
        _print_json(jsonable(report) | {"ok": report.ok})
    elif report.ok:
        typer.echo(f"audit log intact: {report.entries} entries, head hash {report.head_hash}")
    else:
        typer.echo(f"audit log BROKEN at seq {report.first_bad_seq}: {report.problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("list")
def audit_list(
    after: Annotated[int, typer.Option("--after", help="Show entries after this seq.")] = 0,
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries.")] = 100,
    data: DataOpt = None,
    pack: PackOpt = None,
) -> None:
    """Audit entries in order, as JSON lines."""
    with _engine(data, pack, workers=1) as engine:
        entries = engine.audit.entries(after, limit)
    for entry in entries:
        typer.echo(json.dumps(jsonable(entry), ensure_ascii=False))


@app.command()
def erase(
    face: Annotated[list[int] | None, typer.Option("--face", help="Erase this face id (repeatable).")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Erase every face shown with this label.")] = None,
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
) -> None:
    """Erase a person: faces, assets left without faces, embeddings, index entries and thumbnails are deleted, and
    the erased embeddings are kept on a suppression list (embeddings only) so ingest never stores them again.
    Prints the receipt as JSON."""
    chosen = [bool(face), label is not None, photo is not None]
    if sum(chosen) != 1:
        raise _fail("give exactly one of --face, --label or --photo")
    if not reason.strip():
        raise _fail("--reason is required: say which request this erasure answers")
    with _engine(data, pack, workers=1) as engine:
        if face:
            receipt = engine.erasure.erase_faces(cli_actor(), face, reason)
        elif label is not None:
            receipt = engine.erasure.erase_person(cli_actor(), label, reason)
        elif photo is not None:
            receipt = engine.erase_by_photo(cli_actor(), read_uri(str(photo)), str(photo), reason)
        else:  # unreachable: exactly one was checked above
            raise _fail("give exactly one of --face, --label or --photo")
    _print_json(jsonable(receipt))


def main() -> None:  # pragma: no cover - console entry point
    app()
