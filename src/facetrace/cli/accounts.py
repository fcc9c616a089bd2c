"""Accountability: who may use the engine (users, roles, API keys, passwords) and the audit log of what they did."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from facetrace.cli.common import MISSING_EXTRA, engine_session, fail, print_json
from facetrace.cli.options import DataOpt, JsonOpt, PackOpt
from facetrace.cli.render import jsonable
from facetrace.engine import cli_actor
from facetrace.governance.audit import AuditHead

users_app = typer.Typer(
    help="Users, roles (admin, investigator, reviewer, auditor) and API keys.", no_args_is_help=True
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@users_app.command("create-admin")
def users_create_admin(
    name: Annotated[str, typer.Argument(help="The administrator's user name.")],
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an administrator and print their API key, once: it is stored only as a hash. Whoever can run this
    command on the data directory is trusted as its operator (the action is audited as cli:<login>). Creates the data
    directory if it does not exist (the first step of a server install: then `facetrace serve`)."""
    with engine_session(data, pack, workers=1, create=True) as engine:
        issued = engine.users.create_admin(name, cli_actor())
    if as_json:
        print_json({"user": jsonable(issued.user), "api_key": issued.api_key})
        return
    typer.echo(f"created admin {issued.user.name}; API key (shown once, keep it safe):")
    typer.echo(issued.api_key)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", help="admin, investigator, reviewer or auditor.")],
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a user with a role and print their API key, once."""
    with engine_session(data, pack, workers=1) as engine:
        issued = engine.users.add_user(name, role, cli_actor())
    if as_json:
        print_json({"user": jsonable(issued.user), "api_key": issued.api_key})
        return
    typer.echo(f"added {issued.user.role} {issued.user.name}; API key (shown once, keep it safe):")
    typer.echo(issued.api_key)


@users_app.command("deactivate")
def users_deactivate(
    name: Annotated[str, typer.Argument(help="User name.")],
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke every API key of a user and refuse their password; their cases, searches and reviews stay."""
    with engine_session(data, pack, workers=1) as engine:
        engine.users.deactivate(name, cli_actor())
    if as_json:
        print_json({"deactivated": name})
        return
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
    as_json: JsonOpt = False,
) -> None:
    """Give a user a password for the web UI and HTTP Basic (argon2id; at least 12 characters). Prompts twice
    without echoing unless --password-stdin. Audited as set_password; the password itself is never logged."""
    try:
        from facetrace.server.passwords import Argon2Hasher
    except ImportError as exc:
        raise fail(
            f"passwords need the server extra: pip install 'facetrace[server]' ({exc})", error=MISSING_EXTRA
        ) from exc
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"New password for {name}", hide_input=True, confirmation_prompt=True)
    with engine_session(data, pack, workers=1) as engine:
        engine.users.set_password(name, password, cli_actor(), Argon2Hasher())
    if as_json:
        print_json({"password_set": name})
        return
    typer.echo(f"password set for {name}")


@users_app.command("keys")
def users_keys(
    name: Annotated[str, typer.Argument(help="User name.")],
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A user's API keys: id, prefix, created and revoked (never the key)."""
    with engine_session(data, pack, workers=1) as engine:
        keys = engine.users.api_keys(name)
    if as_json:
        print_json(jsonable(keys))
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
    as_json: JsonOpt = False,
) -> None:
    """Revoke one API key (a leaked one, say); the user's other keys and password keep working. Audited."""
    with engine_session(data, pack, workers=1) as engine:
        key = engine.users.revoke_key(name, key_id, cli_actor())
    if as_json:
        print_json({"user": name, "revoked": jsonable(key)})
        return
    typer.echo(f"revoked key {key.key_id} ({key.prefix}…) of {name}")


@users_app.command("list")
def users_list(data: DataOpt = None, pack: PackOpt = None, as_json: JsonOpt = False) -> None:
    """Users and their roles (never their keys)."""
    with engine_session(data, pack, workers=1) as engine:
        found = engine.users.users()
    if as_json:
        print_json(jsonable(found))
        return
    for user in found:
        typer.echo(f"{user.name}  {user.role}" + ("" if user.active else "  (inactive)"))


@audit_app.command("verify")
def audit_verify(
    head: Annotated[
        Path | None,
        typer.Option(
            "--head", help="A head exported earlier (`facetrace audit head --out`): the log must still hold it."
        ),
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the audit log's chain (its entries since the audit key was made are HMACs under that key). Exits 1
    naming the first entry (seq) that was edited, deleted or reordered, or when the log no longer holds --head."""
    exported = _read_head(head) if head is not None else None
    with engine_session(data, pack, workers=1) as engine:
        report = engine.audit.verify(exported)
    if as_json:
        print_json(jsonable(report) | {"ok": report.ok})
    elif report.ok:
        typer.echo(f"audit log intact: {report.entries} entries, head hash {report.head_hash}")
    else:
        typer.echo(f"audit log BROKEN at seq {report.first_bad_seq}: {report.problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("head")
def audit_head(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the head here (JSON) as well as printing it.")
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The newest entry's seq and hash as JSON (with or without --json): keep it somewhere this machine cannot
    rewrite (another host, a ticket, paper); `facetrace audit verify --head FILE` then catches the newest entries
    being deleted."""
    with engine_session(data, pack, workers=1) as engine:
        newest = engine.audit.head()
        key = engine.audit.key
    body = {
        "seq": newest.seq,
        "hash": newest.hash,
        "at": newest.at.isoformat() if newest.at else None,
        "key_fingerprint": key.fingerprint if key is not None else None,
    }
    text = json.dumps(body, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


def _read_head(path: Path) -> AuditHead:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        return AuditHead(int(body["seq"]), str(body["hash"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"{path}: not an exported audit head ({exc})") from exc


@audit_app.command("list")
def audit_list(
    after: Annotated[int, typer.Option("--after", help="Show entries after this seq.")] = 0,
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries.")] = 100,
    data: DataOpt = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Audit entries in order, as JSON lines (with --json: one JSON array)."""
    with engine_session(data, pack, workers=1) as engine:
        entries = engine.audit.entries(after, limit)
    if as_json:
        print_json(jsonable(entries))
        return
    for entry in entries:
        typer.echo(json.dumps(jsonable(entry), ensure_ascii=False))
