"""The command tree: every command takes --data and --json and answers --help; errors are JSON objects with --json,
with a non-zero exit code; commands that read refuse a data directory that does not exist or holds no catalog.

None of these load a model: the data directory is checked before anything else is opened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.core.errors import ERROR_CODES, DataDirectoryError, FacetraceError, NotFoundError, error_code
from facetrace.engine import Engine, open_engine

runner = CliRunner()

# Commands that open the gallery to read it (or to change what it holds), with arguments that pass their own
# checks, so that the data directory is what they refuse.
READ_COMMANDS: dict[tuple[str, ...], list[str]] = {
    ("search",): ["probe.jpg"],
    ("compare",): ["a.jpg", "b.jpg"],
    ("check",): [],
    ("stats",): [],
    ("cluster",): [],  # without photos: the catalog's faces
    ("serve",): ["--get", "/api/v1/health"],
    ("erase",): ["--face", "1", "--reason", "ticket 1"],
    ("purge",): ["--dry-run"],
    ("index", "rebuild"): [],
    ("users", "add"): ["ivan", "--role", "investigator"],
    ("users", "deactivate"): ["ivan"],
    ("users", "set-password"): ["ivan", "--password-stdin"],
    ("users", "keys"): ["ivan"],
    ("users", "revoke-key"): ["ivan", "1"],
    ("users", "list"): [],
    ("audit", "verify"): [],
    ("audit", "head"): [],
    ("audit", "list"): [],
    ("clusters", "list"): [],
    ("clusters", "show"): ["1"],
    ("clusters", "merge"): ["1", "2", "--reason", "one person"],
    ("clusters", "split"): ["1", "--faces", "2", "--reason", "two people"],
    ("clusters", "rename"): ["1", "Ada", "--reason", "confirmed"],
    ("clusters", "hide"): ["1", "--reason", "not a person of interest"],
    ("clusters", "unhide"): ["1", "--reason", "needed again"],
    ("report", "transparency"): ["--from", "2026-01-01", "--to", "2026-01-31"],
}
# Commands that create a data directory (tests/integration/test_cli_outcomes.py runs them on a missing one).
CREATE_COMMANDS = {("ingest",), ("users", "create-admin")}
# Commands that need no gallery: model packs and the accuracy harness (files and datasets, not a catalog).
NO_GALLERY_COMMANDS = {
    ("models", "list"),
    ("models", "verify"),
    ("models", "add"),
    ("eval", "verify"),
    ("eval", "identify"),
    ("eval", "calibrate"),
    ("eval", "robustness"),
    ("eval", "calibrate-quality"),
}


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group under command, by the words that run it (typer's click tree, introspected)."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


TREE = dict(_walk(typer.main.get_command(app)))
LEAVES = {path: command for path, command in TREE.items() if not hasattr(command, "commands")}


def _options(command: Any) -> set[str]:
    return {opt for param in command.params for opt in getattr(param, "opts", ())}


def _error(stdout: str) -> dict[str, str]:
    payload = json.loads(stdout)
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}, payload
    error: dict[str, str] = payload["error"]
    return error


def test_the_tree_is_whole_and_every_command_is_classified() -> None:
    assert len(LEAVES) >= 30
    assert set(LEAVES) == set(READ_COMMANDS) | CREATE_COMMANDS | NO_GALLERY_COMMANDS, (
        "a new command: say whether it reads the gallery, creates one or needs none"
    )


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_every_command_takes_data_and_json(path: tuple[str, ...]) -> None:
    options = _options(LEAVES[path])
    assert {"--data", "--json"} <= options, f"facetrace {' '.join(path)} lacks --data or --json"
    shown = runner.invoke(app, [*path, "--help"])
    assert shown.exit_code == 0, shown.output
    assert "--data" in shown.stdout and "--json" in shown.stdout


@pytest.mark.parametrize("path", sorted(p for p in TREE if p not in LEAVES), ids=lambda p: " ".join(p) or "facetrace")
def test_every_group_answers_help(path: tuple[str, ...]) -> None:
    shown = runner.invoke(app, [*path, "--help"])
    assert shown.exit_code == 0 and "Commands" in shown.stdout, shown.output


@pytest.mark.parametrize("path", sorted(READ_COMMANDS), ids=" ".join)
def test_commands_that_read_refuse_a_missing_data_directory(path: tuple[str, ...], tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    args = [*path, *READ_COMMANDS[path], "--data", str(missing)]
    as_json = runner.invoke(app, [*args, "--json"], input="a long enough password\n")
    assert as_json.exit_code == 2, as_json.output
    error = _error(as_json.stdout)
    assert error["code"] == "data_directory" and f"{missing} does not exist" in error["message"]
    assert as_json.stderr == ""
    plain = runner.invoke(app, args, input="a long enough password\n")
    assert plain.exit_code == 2 and plain.stdout == ""
    assert plain.stderr.startswith("error: data directory") and "`facetrace ingest` creates" in plain.stderr
    assert not missing.exists(), "a command that reads must not create the data directory"


@pytest.mark.parametrize("path", [("search",), ("check",), ("users", "list")], ids=" ".join)
def test_commands_that_read_refuse_a_folder_without_a_catalog(path: tuple[str, ...], tmp_path: Path) -> None:
    folder = tmp_path / "photos-not-a-gallery"
    folder.mkdir()
    result = runner.invoke(app, [*path, *READ_COMMANDS[path], "--data", str(folder), "--json"])
    assert result.exit_code == 2
    error = _error(result.stdout)
    assert error["code"] == "data_directory" and "holds no catalog" in error["message"]
    assert list(folder.iterdir()) == [], "nothing is written into a folder that is not a gallery"


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[Engine]:
    """An empty gallery (made by the Python front door, which creates), with an index that needs no file."""
    with open_engine(tmp_path / "gallery", index_uri="memory://") as engine:
        yield engine


def test_an_empty_gallery_is_not_a_missing_one(gallery: Engine) -> None:
    stats = runner.invoke(app, ["stats", "--data", str(gallery.settings.data), "--json"])
    assert stats.exit_code == 0, stats.output
    out = json.loads(stats.stdout)
    assert out["catalog"]["assets"] == 0 and out["index_uri"] == "memory://"  # the recorded index, not FAISS
    listed = runner.invoke(app, ["audit", "list", "--data", str(gallery.settings.data), "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


def test_usage_errors_are_json_with_json(tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["stats", "--bogus", "--json"])
    assert unknown.exit_code == 2
    assert _error(unknown.stdout) == {"code": "usage", "message": "No such option: --bogus"}
    missing_argument = runner.invoke(app, ["compare", "a.jpg", "--json"])
    assert missing_argument.exit_code == 2 and _error(missing_argument.stdout)["code"] == "usage"
    assert _error(missing_argument.stdout)["message"] == "Missing argument 'b'."
    plain = runner.invoke(app, ["stats", "--bogus"])
    assert plain.exit_code == 2 and plain.stdout == "" and "--bogus" in plain.stderr


def test_errors_a_command_finds_in_its_options_are_json_with_json(tmp_path: Path) -> None:
    nothing = runner.invoke(app, ["ingest", "--data", str(tmp_path / "d"), "--json"])
    assert nothing.exit_code == 2
    assert _error(nothing.stdout) == {
        "code": "invalid_request",
        "message": "give at least one folder, file, @list, --manifest or --warc",
    }
    no_reason = runner.invoke(app, ["erase", "--face", "1", "--data", str(tmp_path / "d"), "--json"])
    assert no_reason.exit_code == 2 and "--reason is required" in _error(no_reason.stdout)["message"]
    assert not (tmp_path / "d").exists()


def test_engine_errors_carry_their_code(gallery: Engine) -> None:
    data = str(gallery.settings.data)
    missing_user = runner.invoke(app, ["users", "keys", "nobody", "--data", data, "--json"])
    assert missing_user.exit_code == 2
    assert _error(missing_user.stdout)["code"] == "not_found" and "nobody" in _error(missing_user.stdout)["message"]
    plain = runner.invoke(app, ["users", "keys", "nobody", "--data", data])
    assert plain.exit_code == 2 and plain.stdout == "" and plain.stderr.startswith("error: ")


def test_a_fault_of_facetrace_is_still_a_json_object(gallery: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_self: Engine) -> dict[str, object]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Engine, "stats", broken)
    result = runner.invoke(app, ["stats", "--data", str(gallery.settings.data), "--json"])
    assert result.exit_code == 1
    assert _error(result.stdout) == {"code": "internal_error", "message": "RuntimeError: disk on fire"}
    assert "Traceback" in result.stderr


def test_commands_answer_json_where_they_printed_text(gallery: Engine) -> None:
    data = str(gallery.settings.data)
    created = runner.invoke(app, ["users", "create-admin", "root", "--data", data, "--json"])
    assert created.exit_code == 0, created.output
    issued = json.loads(created.stdout)
    assert issued["user"]["name"] == "root" and issued["user"]["role"] == "admin"
    assert issued["api_key"].startswith("ft_") and "password" not in created.stdout
    added = json.loads(
        runner.invoke(app, ["users", "add", "ivan", "--role", "reviewer", "--data", data, "--json"]).stdout
    )
    keys = json.loads(runner.invoke(app, ["users", "keys", "ivan", "--data", data, "--json"]).stdout)
    revoked = runner.invoke(app, ["users", "revoke-key", "ivan", str(keys[0]["key_id"]), "--data", data, "--json"])
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["revoked"]["revoked_at"] is not None
    deactivated = runner.invoke(app, ["users", "deactivate", "ivan", "--data", data, "--json"])
    assert json.loads(deactivated.stdout) == {"deactivated": "ivan"} and added["user"]["active"]
    entries = json.loads(runner.invoke(app, ["audit", "list", "--data", data, "--json"]).stdout)
    actions = [entry["action"] for entry in entries]
    assert actions == ["add_user", "add_user", "revoke_api_key", "deactivate_user"], actions
    rebuilt = runner.invoke(app, ["index", "rebuild", "--data", data, "--json"])
    assert rebuilt.exit_code == 0 and json.loads(rebuilt.stdout) == {"faces_indexed": 0}
    health = runner.invoke(app, ["serve", "--get", "/api/v1/health", "--data", data, "--json"])
    answer = json.loads(health.stdout)
    assert health.exit_code == 0 and answer["status"] == 200 and answer["body"]["status"] == "ok"
    refused = runner.invoke(app, ["serve", "--get", "/api/v1/users", "--data", data, "--json"])
    assert refused.exit_code == 1 and json.loads(refused.stdout)["body"]["error"]["code"] == "unauthenticated"


def test_error_codes_are_one_table_for_the_cli_and_http() -> None:
    errors = pytest.importorskip("facetrace.server.errors")
    codes = [code for _, code in ERROR_CODES]
    assert len(codes) == len(set(codes))
    assert set(codes) == set(errors.ERROR_STATUS), "every code has an HTTP status, and every status a code"
    assert errors.status_for(DataDirectoryError("x")) == (500, "data_directory")
    assert errors.status_for(NotFoundError("x")) == (404, "not_found")
    assert error_code(FacetraceError("x")) == "error" and errors.status_for(FacetraceError("x")) == (500, "error")
