"""`facetrace users`, `serve --get` and `audit verify` through the command line; the audit database is then
edited directly with sqlite3, as an insider would, and the verifier names the first bad entry."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.governance.audit import GENESIS_HASH, entry_hash

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("audit") / "data"
    created = runner.invoke(app, ["users", "create-admin", "root", "--data", str(data)])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("ft_")
    for name, role in [("ivan", "investigator"), ("rita", "reviewer"), ("audrey", "auditor")]:
        added = runner.invoke(app, ["users", "add", name, "--role", role, "--data", str(data)])
        assert added.exit_code == 0, added.output
    (data / "admin.key").write_text(key)
    return data


def test_serve_get_answers_one_request_in_process(data_dir: Path) -> None:
    key = (data_dir / "admin.key").read_text()
    health = runner.invoke(app, ["serve", "--get", "/api/v1/health", "--data", str(data_dir)])
    assert health.exit_code == 0 and health.output.startswith("200 OK") and '"status":"ok"' in health.output
    me = runner.invoke(app, ["serve", "--get", "/api/v1/me", "--api-key", key, "--data", str(data_dir)])
    assert me.exit_code == 0 and '"role":"admin"' in me.output
    anonymous = runner.invoke(app, ["serve", "--get", "/api/v1/users", "--data", str(data_dir)])
    assert anonymous.exit_code == 1 and anonymous.output.startswith("401")
    users = runner.invoke(app, ["users", "list", "--data", str(data_dir)])
    assert users.output.split() == ["root", "admin", "ivan", "investigator", "rita", "reviewer", "audrey", "auditor"]
    bad_role = runner.invoke(app, ["users", "add", "x", "--role", "god", "--data", str(data_dir)])
    assert bad_role.exit_code == 2 and "not one of" in bad_role.output


def _copy(data_dir: Path, tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    return copy, sqlite3.connect(copy / "catalog.db")


def _verify(data: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--data", str(data)])
    return result.exit_code, result.output


def test_an_intact_log_verifies(data_dir: Path) -> None:
    code, output = _verify(data_dir)
    assert code == 0 and "intact: 4 entries" in output


def test_an_edited_row_is_named(data_dir: Path, tmp_path: Path) -> None:
    data, db = _copy(data_dir, tmp_path)
    with db:
        db.execute("UPDATE audit_log SET details = replace(details, 'reviewer', 'admin') WHERE seq = 3")
    code, output = _verify(data)
    assert code == 1 and "seq 3" in output and "edited" in output


def test_a_deleted_row_is_named(data_dir: Path, tmp_path: Path) -> None:
    data, db = _copy(data_dir, tmp_path)
    with db:
        db.execute("DELETE FROM audit_log WHERE seq = 2")
    code, output = _verify(data)
    assert code == 1 and "seq 3" in output


def test_reordered_rows_are_named(data_dir: Path, tmp_path: Path) -> None:
    data, db = _copy(data_dir, tmp_path)
    with db:
        db.execute("UPDATE audit_log SET seq = -2 WHERE seq = 2")
        db.execute("UPDATE audit_log SET seq = 2 WHERE seq = 3")
        db.execute("UPDATE audit_log SET seq = 3 WHERE seq = -2")
    code, output = _verify(data)
    assert code == 1 and "seq 2" in output


def _reseal_from(db: sqlite3.Connection, first_seq: int) -> None:
    """What an insider with write access to the catalog (but not the key file) does after editing a row: recompute
    every later hash with the code's own entry_hash, so that each entry links to the one before again."""
    rows = db.execute(
        "SELECT seq, at, actor, action, target, details, prev_hash FROM audit_log WHERE seq >= ? ORDER BY seq",
        (first_seq,),
    ).fetchall()
    prev = db.execute("SELECT hash FROM audit_log WHERE seq = ?", (first_seq - 1,)).fetchone()
    prev_hash = prev[0] if prev else GENESIS_HASH
    for seq, at, actor, action, target, details, _ in rows:
        moment = datetime.fromisoformat(at).replace(tzinfo=UTC)
        new_hash = entry_hash(prev_hash, seq, moment, actor, action, target, json.loads(details))
        db.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev_hash, new_hash, seq))
        prev_hash = new_hash


def test_an_edited_and_resealed_log_fails_without_the_key(data_dir: Path, tmp_path: Path) -> None:
    """Editing an entry and recomputing the later hashes once passed `audit verify`; sealed entries are HMACs under
    a key kept outside the catalog now, which the insider does not have."""
    data, db = _copy(data_dir, tmp_path)
    with db:
        db.execute("UPDATE audit_log SET details = replace(details, 'reviewer', 'admin') WHERE seq = 3")
        _reseal_from(db, 3)
    code, output = _verify(data)
    assert code == 1 and "seq 3" in output and "audit key" in output


def test_deleting_the_newest_entries_is_caught_against_an_exported_head(data_dir: Path, tmp_path: Path) -> None:
    data, db = _copy(data_dir, tmp_path)
    head_file = tmp_path / "head.json"
    exported = runner.invoke(app, ["audit", "head", "--out", str(head_file), "--data", str(data)])
    assert exported.exit_code == 0 and json.loads(head_file.read_text())["seq"] == 4
    assert runner.invoke(app, ["audit", "verify", "--head", str(head_file), "--data", str(data)]).exit_code == 0
    with db:
        db.execute("DELETE FROM audit_log WHERE seq = 4")
    code, output = _verify(data)  # the head recorded (and sealed) beside the key after every append catches it
    assert code == 1 and "newest were deleted" in output
    (data / "audit.head").unlink()  # an insider who can delete files too: a shorter chain is a valid chain...
    assert _verify(data)[0] == 0
    result = runner.invoke(app, ["audit", "verify", "--head", str(head_file), "--data", str(data)])
    assert result.exit_code == 1 and "newest were deleted" in result.output  # ...but not the one exported


def test_a_recorded_head_moved_back_without_the_key_is_caught(data_dir: Path, tmp_path: Path) -> None:
    data, db = _copy(data_dir, tmp_path)
    with db:
        db.execute("DELETE FROM audit_log WHERE seq = 4")
        row = db.execute("SELECT hash FROM audit_log WHERE seq = 3").fetchone()
    (data / "audit.head").write_text(json.dumps({"seq": 3, "hash": row[0], "mac": "0" * 64}))
    code, output = _verify(data)
    assert code == 1 and "recorded head was altered" in output


def test_deleting_the_whole_log_is_caught_by_the_head_recorded_beside_the_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert runner.invoke(app, ["users", "create-admin", "root", "--data", str(data)]).exit_code == 0
    key_file = data / "audit.key"
    body = json.loads(key_file.read_text())
    assert body["keyed_from"] == 1 and key_file.stat().st_mode & 0o777 == 0o600
    assert runner.invoke(app, ["users", "add", "ivan", "--role", "investigator", "--data", str(data)]).exit_code == 0
    with closing(sqlite3.connect(data / "catalog.db")) as db, db:
        db.execute("DELETE FROM audit_log")
    code, output = _verify(data)
    assert code == 1 and "the recorded head is seq 2, the log ends at 0" in output
    (data / "audit.head").unlink()
    code, output = _verify(data)
    assert code == 0  # with every file an insider can reach changed, only an exported head tells


def test_an_unreadable_key_file_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    data, _ = _copy(data_dir, tmp_path)
    (data / "audit.key").write_text("not json")
    code, output = _verify(data)
    assert code == 2 and "audit key file is unreadable" in output
