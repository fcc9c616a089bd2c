"""open_index: the URI picks the backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from facetrace.core.errors import VectorIndexError
from facetrace.index import ExactMemoryIndex, open_index
from facetrace.index.faiss.backend import FaissIndex


def test_memory_uri_gives_the_exact_index() -> None:
    index = open_index("memory://", "m", 8)
    assert isinstance(index, ExactMemoryIndex)
    assert (index.model_id, index.dim) == ("m", 8)


@pytest.mark.parametrize("form", ["faiss-uri", "plain-str", "pathlike"])
def test_faiss_uri_and_plain_paths_give_faiss(tmp_path: Path, form: str) -> None:
    path = tmp_path / "faces.faiss"
    targets: dict[str, str | Path] = {"faiss-uri": f"faiss://{path}", "plain-str": str(path), "pathlike": path}
    target = targets[form]
    index = open_index(target, "m", 8)
    assert isinstance(index, FaissIndex)
    assert index.path == path


def test_relative_faiss_uri_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    index = open_index("faiss://data/faces.faiss", "m", 8)
    assert isinstance(index, FaissIndex)
    assert index.path == Path("data/faces.faiss")


@pytest.mark.parametrize("uri", ["redis://127.0.0.1/0", "faiss://"])
def test_unusable_uris_are_refused(uri: str) -> None:
    with pytest.raises(VectorIndexError):
        open_index(uri, "m", 8)


def test_importing_the_index_package_does_not_load_faiss() -> None:
    code = "import sys, facetrace.index; open_index = facetrace.index.open_index; print('faiss' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_fresh_ignores_what_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "faces.faiss"
    path.write_bytes(b"corrupt")
    with pytest.raises(VectorIndexError, match="facetrace index rebuild"):
        open_index(path, "m", 8)
    assert len(open_index(path, "m", 8, fresh=True)) == 0
    assert len(open_index("memory://", "m", 8, fresh=True)) == 0
