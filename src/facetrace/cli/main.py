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

from facetrace.cli.eval import eval_app
from facetrace.cli.options import DataOpt, JsonOpt, PackOpt, VerboseOpt
from facetrace.cli.render import format_comparison, format_probe_result, jsonable, probe_result_json
from facetrace.core.errors import FacetraceError
from facetrace.core.types import ClusterEvent
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
app.add_typer(index_app, name="index")
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")
users_app = typer.Typer(
    help="Users, roles (admin, investigator, reviewer, auditor) and API keys.", no_args_is_help=True
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
clusters_app = typer.Typer(
    help="Saved clusters (facetrace cluster --save): list, inspect, merge and split them; every change is recorded.",
    no_args_is_help=True,
)
app.add_typer(clusters_app, name="clusters")


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
        engine = open_engine(
            data,
            on_wait=lambda message: typer.echo(message, err=True),  # another process writes to the data directory
            **{k: v for k, v in overrides.items() if v is not None},
        )
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
    """Add photos to the catalog and index. Re-running is safe: images already ingested (same content hash) are
    skipped, so an interrupted ingest resumes where it stopped. Unreadable files are reported and skipped."""
    if not paths and not manifest and not warc:
        raise _fail("give at least one folder, file, @list, --manifest or --warc")
    overrides = {"workers": workers, "threads": threads, "batch_size": batch_size, "ray_address": ray}
    with _engine(data, pack, verbose, **overrides) as engine:
        summary = engine.ingest.run(
            paths or [],
            manifests=manifest or [],
            warcs=warc or [],
            opt_out=opt_out,
            progress=_progress_printer(as_json),
            retain_days=retain_days,
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
            results = [engine.search.fused(probes, top_k=top_k, purpose=purpose)]
        else:
            results = [r for p in probes for r in engine.search.file(p, top_k=top_k, face_index=face, purpose=purpose)]
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
        result = engine.search.compare_files(a, b)
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
        report = engine.index.check(repair=repair)
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
    run: Annotated[int | None, typer.Option("--run", help="Cluster only the faces stored by this ingest run.")] = None,
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Persist clusters of the catalog's faces (see `facetrace clusters`). Saved clusters keep their ids: "
            "a later --save (or an ingest) only places faces that are in no cluster yet; with --run, that run's.",
        ),
    ] = False,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Group unknown faces into identities, conservatively: two people wrongly merged is worse than one person
    split, so a merge needs the whole of both groups to agree, at false-match rates of 1e-4 to 1e-5."""
    from facetrace.evaluation.clustering import score_against_manifest

    if save:
        if paths:
            raise _fail("--save keeps clusters of catalog faces: ingest the photos first, then cluster --save")
        if labels is not None:
            raise _fail("--labels scores a clustering; run it without --save")
        with _engine(data, pack, verbose, workers=1) as engine:
            update = engine.clusters.save(run_id=run)
            total = len(engine.clusters.saved())
        if as_json:
            _print_json(jsonable(update) | {"clusters_saved": total})
        else:
            typer.echo(
                f"{update.faces_considered} faces placed: {update.faces_assigned} joined saved clusters, the rest "
                f"formed {len(update.clusters_created)} new clusters; {total} clusters saved ({update.seconds:.1f} s)"
            )
        return
    with _engine(data, pack, verbose, workers=1) as engine:
        clustered = engine.clusters.cluster(paths or [], run_id=run)
    faces, result, ordered = clustered.faces, clustered.clustering, clustered.groups
    try:
        report = score_against_manifest(clustered, labels) if labels is not None else None
    except FacetraceError as exc:
        raise _fail(str(exc)) from exc
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


@clusters_app.command("list")
def clusters_list(
    limit: Annotated[int, typer.Option("--limit", help="At most this many clusters (largest first); 0: all.")] = 50,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Saved clusters of the active model, largest first."""
    with _engine(data, pack, workers=1) as engine:
        found = engine.clusters.saved()
    shown = found[:limit] if limit > 0 else found
    if as_json:
        _print_json({"clusters": jsonable(shown), "total": len(found)})
        return
    typer.echo(f"{len(found)} clusters ({sum(len(c.face_ids) > 1 for c in found)} with 2+ faces)")
    for item in shown:
        name = f"  {item.name}" if item.name else ""
        preview = ", ".join(map(str, item.face_ids[:8])) + (" …" if len(item.face_ids) > 8 else "")
        typer.echo(f"  cluster {item.cluster_id}: {len(item.face_ids)} faces{name}  [{preview}]")


@clusters_app.command("show")
def clusters_show(
    cluster_id: Annotated[int, typer.Argument(help="Cluster id.")],
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One saved cluster: its faces with their photos, and every recorded change with its evidence."""
    with _engine(data, pack, workers=1) as engine:
        found, events, records = engine.clusters.show(cluster_id)
    if as_json:
        _print_json(
            {
                "cluster": jsonable(found),
                "faces": [jsonable(records[f]) for f in found.face_ids if f in records],
                "events": jsonable(events),
            }
        )
        return
    typer.echo(f"cluster {found.cluster_id}: {len(found.face_ids)} faces" + (f", {found.name}" if found.name else ""))
    for face_id in found.face_ids:
        record = records.get(face_id)
        if record is not None:
            typer.echo(f"  face {face_id}  {record.asset_uri}" + (f"  ({record.label})" if record.label else ""))
    typer.echo("events:")
    for event in events:
        other = f" (cluster {event.other_cluster_id})" if event.other_cluster_id is not None else ""
        moved = f"; {len(event.face_ids)} faces" if event.face_ids else ""
        typer.echo(
            f"  {event.at.isoformat(timespec='seconds')} {event.kind}{other} by {event.actor}: {event.reason}{moved}; "
            f"{json.dumps(event.evidence, sort_keys=True)}"
        )


ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (required; recorded with the change and audited).")]


@clusters_app.command("merge")
def clusters_merge(
    kept: Annotated[int, typer.Argument(help="The cluster that remains.")],
    absorbed: Annotated[int, typer.Argument(help="The cluster whose faces move into the first; it is deleted.")],
    reason: ReasonOpt = "",
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge two saved clusters you judge to be one person. Allowed even where the automatic rules would not
    merge; their evidence (edge, mean and lowest similarity, and whether the rules would merge) is recorded."""
    if not reason.strip():
        raise _fail("--reason is required")
    with _engine(data, pack, workers=1) as engine:
        event = engine.clusters.merge(kept, absorbed, reason)
    _print_event(event, as_json)


@clusters_app.command("split")
def clusters_split(
    cluster_id: Annotated[int, typer.Argument(help="The cluster to split.")],
    faces: Annotated[str, typer.Option("--faces", help="Comma-separated face ids that leave for a new cluster.")],
    reason: ReasonOpt = "",
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move some faces of a saved cluster into a new cluster (a wrong merge undone)."""
    if not reason.strip():
        raise _fail("--reason is required")
    try:
        face_ids = [int(part) for part in faces.split(",") if part.strip()]
    except ValueError as exc:
        raise _fail(f"--faces takes comma-separated face ids, not {faces!r}") from exc
    with _engine(data, pack, workers=1) as engine:
        event = engine.clusters.split(cluster_id, face_ids, reason)
    _print_event(event, as_json)


@clusters_app.command("rename")
def clusters_rename(
    cluster_id: Annotated[int, typer.Argument(help="Cluster id.")],
    name: Annotated[str, typer.Argument(help="The confirmed label (empty to clear it).")],
    reason: ReasonOpt = "",
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a saved cluster a confirmed label."""
    if not reason.strip():
        raise _fail("--reason is required")
    with _engine(data, pack, workers=1) as engine:
        event = engine.clusters.rename(cluster_id, name or None, reason)
    _print_event(event, as_json)


def _print_event(event: ClusterEvent, as_json: bool) -> None:
    if as_json:
        _print_json(jsonable(event))
        return
    other = f" and {event.other_cluster_id}" if event.other_cluster_id is not None else ""
    typer.echo(
        f"{event.kind} recorded (event {event.event_id}) on cluster {event.cluster_id}{other}: "
        f"{len(event.face_ids)} faces; evidence {json.dumps(event.evidence, sort_keys=True)}"
    )


@index_app.command("rebuild")
def index_rebuild(data: DataOpt = None, pack: PackOpt = None) -> None:
    """Recreate the index from the catalog's stored embeddings (after corruption, or to change structure)."""
    with _engine(data, pack, workers=1) as engine:
        count = engine.index.rebuild()
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


@users_app.command("set-password")
def users_set_password(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from the first line of standard input (for scripts)."),
    ] = False,
    data: DataOpt = None,
    pack: PackOpt = None,
) -> None:
    """Give a user a password for the web UI and HTTP Basic (argon2id; at least 12 characters). Prompts twice
    without echoing unless --password-stdin. Audited as set_password; the password itself is never logged."""
    try:
        from facetrace.server.passwords import Argon2Hasher
    except ImportError as exc:
        raise _fail(f"passwords need the server extra: pip install 'facetrace[server]' ({exc})") from exc
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"New password for {name}", hide_input=True, confirmation_prompt=True)
    with _engine(data, pack, workers=1) as engine:
        engine.users.set_password(name, password, cli_actor(), Argon2Hasher())
    typer.echo(f"password set for {name}")


@users_app.command("keys")
def users_keys(
    name: Annotated[str, typer.Argument(help="User name.")],
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A user's API keys: id, prefix, created and revoked (never the key)."""
    with _engine(data, pack, workers=1) as engine:
        keys = engine.users.api_keys(name)
    if as_json:
        _print_json(jsonable(keys))
        return
    for key in keys:
        state = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
        typer.echo(f"{key.key_id}  {key.prefix}…  created {key.created_at:%Y-%m-%d %H:%M}  {state}")


@users_app.command("revoke-key")
def users_revoke_key(
    name: Annotated[str, typer.Argument(help="User name.")],
    key_id: Annotated[int, typer.Argument(help="The key's id (see `facetrace users keys NAME`).")],
    data: DataOpt = None,
    pack: PackOpt = None,
) -> None:
    """Revoke one API key (a leaked one, say); the user's other keys and password keep working. Audited."""
    with _engine(data, pack, workers=1) as engine:
        key = engine.users.revoke_key(name, key_id, cli_actor())
    typer.echo(f"revoked key {key.key_id} ({key.prefix}…) of {name}")


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
            receipt = engine.erasure.erase_by_photo(cli_actor(), read_uri(str(photo)), str(photo), reason)
        else:  # unreachable: exactly one was checked above
            raise _fail("give exactly one of --face, --label or --photo")
    _print_json(jsonable(receipt))


@app.command()
def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; change nothing.")] = False,
    data: DataOpt = None,
    pack: PackOpt = None,
) -> None:
    """Delete every photo and face whose retention has ended (catalog rows, index entries, thumbnails), audited as
    one `purge` entry. Unlike erase, nothing goes on the suppression list. Prints the summary as JSON."""
    with _engine(data, pack, workers=1) as engine:
        summary = engine.retention.purge(cli_actor(), dry_run=dry_run)
    _print_json(jsonable(summary))


def main() -> None:  # pragma: no cover - console entry point
    app()
