"""Shared fixtures: where the real photo datasets are, and throwaway data directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def datasets_root() -> Path | None:
    """FACETRACE_DATASETS, else ../shared/datasets beside the repository (never copied into it)."""
    env = os.environ.get("FACETRACE_DATASETS")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared" / "datasets"]
    for candidate in candidates:
        if (candidate / "README.md").exists() or candidate.is_dir():
            # Resolved, as ingest resolves the paths it stores: a symlinked datasets folder must compare equal.
            return candidate.resolve()
    return None


@pytest.fixture(scope="session")
def datasets() -> Path:
    root = datasets_root()
    if root is None:
        pytest.skip("real photo datasets not found: set FACETRACE_DATASETS or place shared/datasets beside the repo")
    return root


@pytest.fixture(scope="session")
def lfw(datasets: Path) -> Path:
    root = datasets / "lfw"
    if not (root / "manifest.csv").exists():
        pytest.skip(f"LFW not found under {root}")
    return root


@pytest.fixture(scope="session")
def fr_examples(datasets: Path) -> Path:
    root = datasets / "face_recognition_examples"
    if not (root / "manifest.csv").exists():
        pytest.skip(f"face_recognition examples not found under {root}")
    return root


@pytest.fixture(autouse=True)
def _no_default_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run without --data must never touch the real user's data directory."""
    monkeypatch.setenv("FACETRACE_DATA", str(tmp_path_factory.getbasetemp() / "default-data"))
