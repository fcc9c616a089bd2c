"""The command line: the `facetrace` app, assembled from the command modules. Thin commands over Engine verbs;
errors are translated once, in cli/common.py. Every command takes --data and --json (a test walks the tree)."""

from __future__ import annotations

import typer

from facetrace.cli import accounts, clusters, gallery, governance, models, report, serve
from facetrace.cli.common import JsonErrorsGroup
from facetrace.cli.eval import eval_app

app = typer.Typer(
    cls=JsonErrorsGroup,
    help="facetrace: self-hosted, accountable face search. Ingest photos you lawfully hold, search them with a "
    "probe photo, and read every score as a false-match rate for your gallery's size.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Registration order is the order `facetrace --help` lists them in: the commands, then the sub-apps.
app.command()(gallery.ingest)
app.command()(gallery.search)
app.command()(gallery.compare)
app.command()(gallery.check)
app.command()(gallery.stats)
app.command()(clusters.cluster)
app.command()(serve.serve)
app.command()(governance.erase)
app.command()(governance.purge)
app.add_typer(gallery.index_app, name="index")
app.add_typer(models.models_app, name="models")
app.add_typer(eval_app, name="eval")
app.add_typer(accounts.users_app, name="users")
app.add_typer(accounts.audit_app, name="audit")
app.add_typer(clusters.clusters_app, name="clusters")
app.add_typer(report.report_app, name="report")


def main() -> None:  # pragma: no cover - console entry point
    app()
