"""Reports over what the gallery was used for: `facetrace report transparency` (engine.transparency), the same
figures the auditor's page shows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from facetrace.cli.common import engine_session, print_json
from facetrace.cli.options import DataOpt, JsonOpt, PackOpt
from facetrace.engine.transparency import TransparencyReport, duration_words

report_app = typer.Typer(help="Reports over what the gallery was used for.", no_args_is_help=True)


@report_app.command("transparency")
def transparency(
    since: Annotated[
        datetime, typer.Option("--from", formats=["%Y-%m-%d"], metavar="DATE", help="First day (UTC), YYYY-MM-DD.")
    ],
    until: Annotated[
        datetime,
        typer.Option("--to", formats=["%Y-%m-%d"], metavar="DATE", help="Last day (UTC, included), YYYY-MM-DD."),
    ],
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A transparency report for a period: searches by purpose and outcome, confirmations and rejections, erasure
    requests and the time taken to erase, suppressed re-ingests, retention purges and the users active, read from
    the audit log and the ingest runs. Reads only."""
    with engine_session(data, pack, workers=1) as engine:
        report = engine.transparency.report(since.date(), until.date())
    if as_json:
        print_json(report.to_dict())
        return
    for line in render_lines(report):
        typer.echo(line)


def render_lines(report: TransparencyReport) -> list[str]:
    totals = report.search_totals
    erasure = report.erasure
    lines = [
        f"Transparency report {report.since} to {report.until} (UTC, both days included)",
        "",
        f"Searches: {totals.total} ({totals.with_hits} with hits, {totals.without_hits} without, "
        f"{totals.failed} failed)",
    ]
    lines += [
        f"  {outcome.total:>6}  {outcome.with_hits} with hits, {outcome.without_hits} without, {outcome.failed} "
        f"failed: {purpose}"
        for purpose, outcome in report.searches.items()
    ]
    lines += [
        f"Reviews: {report.confirmed} candidates confirmed, {report.rejected} rejected",
        f"Erasure: {erasure.requests} requests, {erasure.erased} erasures ({erasure.faces_erased} faces), "
        f"{erasure.pending} pending",
        f"  time to erase (first preview to erasure, {erasure.timed} timed): "
        + (
            f"median {duration_words(erasure.median_s)}, max {duration_words(erasure.max_s)}"
            if erasure.median_s is not None and erasure.max_s is not None
            else "none timed"
        ),
        f"Suppressed re-ingests: {report.suppressed_faces} faces in {report.suppressed_images} photos of erased "
        f"people not stored ({report.ingest_runs} ingest runs)",
        f"Retention purges: {report.purges} ({report.purged_faces} faces, {report.purged_assets} photos)",
        f"Users active: {len(report.active_users)} ({report.audit_entries} audit entries)",
    ]
    lines += [f"  {count:>6}  {user}" for user, count in report.active_users.items()]
    return lines
