"""Model packs: which weights embed faces, their licences, and the checks a pack passes before it is used."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from facetrace.cli.common import fail_on, print_json
from facetrace.cli.options import DataOpt, JsonOpt
from facetrace.cli.render import jsonable
from facetrace.core.errors import FacetraceError
from facetrace.engine import add_model_pack, list_model_packs, verify_model_pack

if TYPE_CHECKING:
    from facetrace.vision.packs import ModelPack

models_app = typer.Typer(
    help="Model packs: which weights embed faces, their licences and checks.", no_args_is_help=True
)


@models_app.command("list")
def models_list(data: DataOpt = None, as_json: JsonOpt = False) -> None:
    """Installed model packs with their licences. Packs not cleared for commercial use say so."""
    packs = list_model_packs(data)
    if as_json:
        print_json(jsonable(packs))
        return
    for info in packs:
        use = "" if info.commercial_use else "  [NON-COMMERCIAL USE ONLY]"
        where = "built-in" if info.builtin else info.location
        typer.echo(f"{info.id}  ({info.embedding_dim}-d, {info.licence_spdx}){use}  {where}")
        typer.echo(f"    {info.name} {info.version}: {info.licence_summary} {info.licence_url}")
        if info.landmark_model is not None:
            state = (
                f"installed: {info.landmark_model_installed}"
                if info.landmark_model_installed
                else f"not installed (turned faces match better with it): {info.landmark_model_install}"
            )
            typer.echo(f"    landmark refinement {info.landmark_model}: {state}")
        if info.problem:
            typer.echo(f"    PROBLEM: {info.problem}")


@models_app.command("verify")
def models_verify(
    pack: Annotated[str | None, typer.Argument(help="Pack id or folder (default: the default pack).")] = None,
    data: DataOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every file of a pack (sha256, graph shapes) and run each model once."""
    try:
        loaded = verify_model_pack(pack, data)
    except FacetraceError as exc:
        raise fail_on(exc) from exc
    if as_json:
        print_json(_pack_json(loaded) | {"ok": True})
        return
    typer.echo(f"{loaded.id}: ok ({loaded.embedding_dim}-d embeddings, licence {loaded.licence.spdx})")


@models_app.command("add")
def models_add(
    path: Annotated[Path, typer.Argument(help="A pack folder: manifest.json and the ONNX files it names.")],
    data: DataOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a model pack and copy it into the data directory (made if missing); use it with --pack ID."""
    try:
        loaded = add_model_pack(path, data)
    except FacetraceError as exc:
        raise fail_on(exc) from exc
    if as_json:
        print_json(_pack_json(loaded) | {"added": True})
        return
    note = "" if loaded.commercial_use else f" — licence {loaded.licence.spdx}: NOT for commercial use"
    typer.echo(f"added {loaded.id}{note}")


def _pack_json(loaded: ModelPack) -> dict[str, Any]:
    return {
        "id": loaded.id,
        "model_id": loaded.model_id,
        "embedding_dim": loaded.embedding_dim,
        "licence": loaded.licence.spdx,
        "commercial_use": loaded.commercial_use,
    }
