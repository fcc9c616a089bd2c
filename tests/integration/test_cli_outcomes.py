"""Commands say what they did: the ones that create a data directory do, an ingest whose every input failed exits
non-zero, and the JSON of a failed run still carries its summary. Real models on real photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def _unreadable(folder: Path, good: Path) -> list[Path]:
    folder.mkdir()
    truncated, empty, text = folder / "truncated.jpg", folder / "empty.jpg", folder / "notes.jpg"
    truncated.write_bytes(good.read_bytes()[:2000])
    empty.write_bytes(b"")
    text.write_text("not a photo\n")
    return [truncated, empty, text]


def test_an_ingest_whose_every_input_failed_exits_non_zero(tmp_path: Path, fr_examples: Path) -> None:
    good = fr_examples / "examples" / "obama_small.jpg"
    bad = _unreadable(tmp_path / "bad", good)
    data = tmp_path / "data"
    failed = runner.invoke(app, ["ingest", *map(str, bad), "--data", str(data), "--workers", "1", "--json"])
    assert failed.exit_code == 1, failed.output
    out = json.loads(failed.stdout)
    assert (out["images_seen"], out["images_added"], out["errors"]) == (3, 0, 3)  # the summary, and why it failed
    assert out["error"] == {
        "code": "all_inputs_failed",
        "message": "every input failed: 3 of 3 images could not be ingested",
    }
    assert (data / "facetrace.json").is_file(), "ingest creates the data directory"
    plain = runner.invoke(app, ["ingest", str(bad[0]), "--data", str(data), "--workers", "1"])
    assert plain.exit_code == 1 and "error: every input failed: 1 of 1 images" in plain.stderr
    assert "truncated.jpg" in plain.stderr  # the skipped file is still named

    # One input stored (or already known) is a run that did something: exit 0, its errors reported.
    mixed = runner.invoke(app, ["ingest", str(good), *map(str, bad), "--data", str(data), "--workers", "1", "--json"])
    assert mixed.exit_code == 0 and "error" not in json.loads(mixed.stdout)
    again = runner.invoke(app, ["ingest", str(good), str(bad[1]), "--data", str(data), "--workers", "1", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["images_skipped"] == 1


def test_the_first_administrator_creates_the_data_directory_and_serve_reads_it(tmp_path: Path) -> None:
    data = tmp_path / "server-data"
    refused = runner.invoke(app, ["serve", "--get", "/api/v1/health", "--data", str(data)])
    assert refused.exit_code == 2 and "does not exist" in refused.stderr and not data.exists()
    created = runner.invoke(app, ["users", "create-admin", "root", "--data", str(data)])
    assert created.exit_code == 0, created.output
    assert json.loads((data / "facetrace.json").read_text())["catalog_uri"] is None
    key = created.stdout.strip().splitlines()[-1]
    me = runner.invoke(app, ["serve", "--get", "/api/v1/me", "--api-key", key, "--data", str(data), "--json"])
    assert me.exit_code == 0 and json.loads(me.stdout)["body"]["role"] == "admin"
