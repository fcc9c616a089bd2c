"""A data directory records the catalog and index it was made with, and is opened with them or refused.

Opening an engine loads no model (services build them on first use), so these run on real data directories in
well under a second each. The same rules on a PostgreSQL catalog, through the CLI: tests/contract/
test_data_directory_contract.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facetrace import __version__
from facetrace.config import Settings
from facetrace.core.errors import DataDirectoryError
from facetrace.engine import open_engine
from facetrace.engine.datadir import RECORD_NAME, catalog_identity, index_identity, new_record


def _record(data: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((data / RECORD_NAME).read_text())
    return loaded


def test_reading_a_missing_directory_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    with pytest.raises(DataDirectoryError, match="does not exist"):
        open_engine(missing, create=False)
    assert not missing.exists()


def test_the_python_default_creates_and_records_the_defaults(tmp_path: Path) -> None:
    data = tmp_path / "new"
    with open_engine(data) as engine:
        assert engine.settings.data == data.resolve()
    record = _record(data)
    assert record["format"] == 1 and record["version"] == __version__ and str(record["created_at"]).endswith("+00:00")
    assert record["catalog_uri"] is None and record["index_uri"] is None  # the defaults inside: the folder can move
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".")) == []  # the atomic write left no temp
    moved = tmp_path / "moved"
    data.rename(moved)
    with open_engine(moved, create=False) as engine:
        assert engine.stats()["catalog_uri"] == f"sqlite:///{moved.resolve() / 'catalog.db'}"


def test_recorded_uris_are_used_when_none_is_given(tmp_path: Path) -> None:
    data, catalog = tmp_path / "data", tmp_path / "elsewhere" / "catalog.db"
    with open_engine(data, catalog_uri=f"sqlite:///{catalog}", index_uri="memory://"):
        pass
    assert (
        _record(data)["catalog_uri"] == f"sqlite:///{catalog.resolve()}" and _record(data)["index_uri"] == "memory://"
    )
    assert not (data / "catalog.db").exists()
    with open_engine(data, create=False) as engine:
        stats = engine.stats()
    assert stats["catalog_uri"] == f"sqlite:///{catalog.resolve()}" and stats["index_uri"] == "memory://"
    assert not (data / "catalog.db").exists() and not (data / "faces.faiss").exists()


def test_a_different_uri_is_refused_not_a_new_gallery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    with open_engine(data, index_uri="memory://"):
        pass
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(DataDirectoryError, match=r"made with the default catalog .*another catalog"):
        open_engine(data, catalog_uri=f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("FACETRACE_INDEX_URI", f"faiss://{data / 'faces.faiss'}")  # as the environment gives it
    with pytest.raises(DataDirectoryError, match=r"made with the index memory:// .*FACETRACE_INDEX_URI"):
        open_engine(data)
    assert sorted(p.name for p in data.iterdir()) == before and not (tmp_path / "other.db").exists()
    monkeypatch.setenv("FACETRACE_INDEX_URI", "memory://")
    # The same place spelled otherwise is the same gallery: here a relative path to the default catalog.
    monkeypatch.chdir(data)
    with open_engine(data, catalog_uri="sqlite:///catalog.db", create=False) as engine:
        assert engine.settings.index_uri == "memory://"


def test_a_corrupt_record_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_engine(data):
        pass
    (data / RECORD_NAME).write_text('{"catalog_uri": ')
    with pytest.raises(DataDirectoryError, match="is not a facetrace data directory record"):
        open_engine(data, create=False)
    (data / RECORD_NAME).write_text('{"format": 1, "catalog_uri": 3}')
    with pytest.raises(DataDirectoryError, match="must be strings or null"):
        open_engine(data)


def test_a_record_whose_default_catalog_is_gone_holds_no_catalog(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_engine(data):
        pass
    (data / "catalog.db").unlink()
    with pytest.raises(DataDirectoryError, match="holds no catalog"):
        open_engine(data, create=False)


def test_a_directory_from_before_records_is_read_as_it_was_and_recorded_when_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_engine(data):
        pass
    (data / RECORD_NAME).unlink()  # as a directory made before this release
    with open_engine(data, create=False) as engine:
        assert engine.stats()["catalog"].assets == 0
    assert not (data / RECORD_NAME).exists(), "reading writes nothing"
    with open_engine(data):
        pass
    assert _record(data)["catalog_uri"] is None


def test_a_directory_made_with_a_catalog_server_before_records_is_not_silently_a_new_gallery(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "thumbnails").mkdir(parents=True)  # what such a directory holds: thumbnails, no catalog.db
    with pytest.raises(DataDirectoryError, match=r"no catalog\.db: it was made with a catalog server"):
        open_engine(data)
    with pytest.raises(DataDirectoryError, match="holds no catalog"):
        open_engine(data, create=False)
    assert not (data / "catalog.db").exists()


def test_passwords_are_never_recorded_and_places_compare_by_identity(tmp_path: Path) -> None:
    settings = Settings(
        data=tmp_path / "d",
        catalog_uri="postgres://ada:s3cret@db.example:5432/faces?sslmode=require",
        index_uri="milvus://ada:t0ken@milvus.example:19530/faces",
    )
    record = new_record(settings)
    assert record.catalog_uri == "postgresql://ada@db.example:5432/faces?sslmode=require"
    assert record.index_uri == "milvus://ada@milvus.example:19530/faces"
    assert "s3cret" not in json.dumps(record.to_json()) and "t0ken" not in json.dumps(record.to_json())
    assert catalog_identity("postgresql+psycopg://ada@db.example:5432/faces?sslmode=require") == record.catalog_uri
    assert index_identity("faces.faiss") == f"faiss://{Path('faces.faiss').resolve()}"
    assert index_identity("milvus://rel/faces.db") == f"milvus://{Path('rel/faces.db').resolve()}"
    assert index_identity("MEMORY://") == "memory://" and catalog_identity("sqlite://") == "sqlite://"
