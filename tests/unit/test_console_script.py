"""The `facetrace` console script: it runs the command line, and importing it loads nothing else.

Worker processes started with multiprocessing's spawn method re-import the parent's main script; when that script
imported the whole command line, every ingest worker spent about a second loading the catalog, server and account
modules it never uses (a profile of `facetrace ingest --workers 2` put a third of the workers' start-up there).
"""

import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_console_script_is_the_light_entry_point() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"] == {"facetrace": "facetrace.__main__:main"}


def test_importing_the_entry_point_loads_no_command_line_catalog_or_models() -> None:
    heavy = ("facetrace.cli.main", "facetrace.engine", "sqlalchemy", "typer", "onnx", "cv2")
    script = f"import sys, facetrace.__main__; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_python_dash_m_facetrace_runs_the_command_line() -> None:
    result = subprocess.run([sys.executable, "-m", "facetrace", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "ingest" in result.stdout
