"""Without the ray extra, a Ray ingest is refused up front with the command that installs it.

Ray ingest itself, with real models on real photos, is tested in tests/integration/test_ingest_ray.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.core.errors import ConfigError
from facetrace.engine import open_engine


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError


def test_engine_names_the_extra_when_ray_is_missing(no_ray: None, tmp_path: Path) -> None:
    with open_engine(tmp_path / "d", ray_address="local") as engine:
        with pytest.raises(ConfigError, match=r"facetrace\[ray\]"):
            engine.ingest.run([tmp_path])
        assert engine.catalog.runs() == []  # refused before a run was recorded


def test_cli_reports_the_missing_extra(no_ray: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--data", str(tmp_path / "d"), "--ray", "local"])
    assert result.exit_code == 2
    assert "pip install 'facetrace[ray]'" in result.output
