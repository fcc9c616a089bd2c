"""`facetrace users`, `serve --get` and `audit verify` through the command line; the audit database is then
edited directly with sqlite3, as an insider would, and the verifier names the first bad entry."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app

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
