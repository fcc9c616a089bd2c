"""Clustering: group faces into identities (`facetrace cluster`), and the saved clusters a person corrects
(`facetrace clusters`), every change recorded with its evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from facetrace.cli.common import engine_session, fail, fail_on, print_json
from facetrace.cli.options import DataOpt, JsonOpt, PackOpt, VerboseOpt
from facetrace.cli.render import jsonable
from facetrace.core.errors import FacetraceError
from facetrace.core.types import ClusterEvent

clusters_app = typer.Typer(
    help="Saved clusters (facetrace cluster --save): list, inspect, merge and split them; every change is recorded.",
    no_args_is_help=True,
)


def cluster(
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
            raise fail("--save keeps clusters of catalog faces: ingest the photos first, then cluster --save")
        if labels is not None:
            raise fail("--labels scores a clustering; run it without --save")
        with engine_session(data, pack, verbose, workers=1) as engine:
            update = engine.clusters.save(run_id=run)
            total = len(engine.clusters.saved())
        if as_json:
            print_json(jsonable(update) | {"clusters_saved": total})
        else:
            typer.echo(
                f"{update.faces_considered} faces placed: {update.faces_assigned} joined saved clusters, the rest "
                f"formed {len(update.clusters_created)} new clusters; {total} clusters saved ({update.seconds:.1f} s)"
            )
        return
    # Photos given: they are clustered as they are, and the data directory (its model packs) is made if missing, as
    # before; without them the catalog's faces are clustered, so the directory must hold one.
    with engine_session(data, pack, verbose, workers=1, create=bool(paths)) as engine:
        clustered = engine.clusters.cluster(paths or [], run_id=run)
    faces, result, ordered = clustered.faces, clustered.clustering, clustered.groups
    try:
        report = score_against_manifest(clustered, labels) if labels is not None else None
    except FacetraceError as exc:
        raise fail_on(exc) from exc
    if as_json:
        payload: dict[str, Any] = {
            "thresholds": jsonable(result.thresholds),
            "faces": len(faces),
            "clusters": [[jsonable(faces[i]) for i in members] for members in ordered],
            "merges": jsonable(result.merges),
        }
        if report is not None:
            payload["evaluation"] = report.to_dict()
        print_json(payload)
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
    with engine_session(data, pack, workers=1) as engine:
        found = engine.clusters.saved()
    shown = found[:limit] if limit > 0 else found
    if as_json:
        print_json({"clusters": jsonable(shown), "total": len(found)})
        return
    typer.echo(f"{len(found)} clusters ({sum(len(c.face_ids) > 1 for c in found)} with 2+ faces)")
    for item in shown:
        name = (f"  {item.name}" if item.name else "") + ("  (hidden)" if item.hidden else "")
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
    with engine_session(data, pack, workers=1) as engine:
        found, events, records = engine.clusters.show(cluster_id)
    if as_json:
        print_json(
            {
                "cluster": jsonable(found),
                "faces": [jsonable(records[f]) for f in found.face_ids if f in records],
                "events": jsonable(events),
            }
        )
        return
    typer.echo(
        f"cluster {found.cluster_id}: {len(found.face_ids)} faces"
        + (f", {found.name}" if found.name else "")
        + (" (hidden from the people view)" if found.hidden else "")
    )
    for face_id in found.face_ids:
        record = records.get(face_id)
        if record is not None:
            typer.echo(f"  face {face_id}  {record.asset_uri}" + (f"  ({record.shown_as})" if record.shown_as else ""))
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
        raise fail("--reason is required")
    with engine_session(data, pack, workers=1) as engine:
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
        raise fail("--reason is required")
    try:
        face_ids = [int(part) for part in faces.split(",") if part.strip()]
    except ValueError as exc:
        raise fail(f"--faces takes comma-separated face ids, not {faces!r}") from exc
    with engine_session(data, pack, workers=1) as engine:
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
        raise fail("--reason is required")
    with engine_session(data, pack, workers=1) as engine:
        event = engine.clusters.rename(cluster_id, name or None, reason)
    _print_event(event, as_json)


@clusters_app.command("hide")
def clusters_hide(
    cluster_id: Annotated[int, typer.Argument(help="Cluster id.")],
    reason: ReasonOpt = "",
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Leave a saved cluster out of the web UI's people view (its faces, history and searches are unchanged)."""
    _hide(cluster_id, True, reason, data, pack, as_json)


@clusters_app.command("unhide")
def clusters_unhide(
    cluster_id: Annotated[int, typer.Argument(help="Cluster id.")],
    reason: ReasonOpt = "",
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a hidden cluster in the people view again."""
    _hide(cluster_id, False, reason, data, pack, as_json)


def _hide(cluster_id: int, hidden: bool, reason: str, data: Path | None, pack: str | None, as_json: bool) -> None:
    if not reason.strip():
        raise fail("--reason is required")
    with engine_session(data, pack, workers=1) as engine:
        event = engine.clusters.hide(cluster_id, hidden, reason)
    _print_event(event, as_json)


def _print_event(event: ClusterEvent, as_json: bool) -> None:
    if as_json:
        print_json(jsonable(event))
        return
    other = f" and {event.other_cluster_id}" if event.other_cluster_id is not None else ""
    typer.echo(
        f"{event.kind} recorded (event {event.event_id}) on cluster {event.cluster_id}{other}: "
        f"{len(event.face_ids)} faces; evidence {json.dumps(event.evidence, sort_keys=True)}"
    )
