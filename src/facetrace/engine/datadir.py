"""A data directory and the catalog and index it was made with.

A data directory records where its gallery lives in `facetrace.json` (written atomically when a command that
creates things first opens it):

    {"format": 1, "catalog_uri": null, "index_uri": "memory://", "created_at": "2025-…", "version": "0.1.0"}

null means the default inside the directory (catalog.db, faces.faiss), so the directory can be moved. URIs are
recorded without their password: a later command that gives no URI uses the recorded one (PostgreSQL then takes the
password from PGPASSWORD or ~/.pgpass, or the URI is given again in FACETRACE_CATALOG_URI); a command that gives a
different URI is refused, since another catalog or index is another gallery.

Opening for reading (`create=False`) refuses a directory that does not exist or holds no catalog; opening to create
(`create=True`) makes the directory and records the URIs it was opened with. A directory made before this record
existed is recognised by its catalog.db and gets its record at the next opening that may create.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from facetrace.config import Settings
from facetrace.core.errors import DataDirectoryError

RECORD_NAME = "facetrace.json"
RECORD_FORMAT = 1
CATALOG_FILE = "catalog.db"
_ENV = {"catalog": "FACETRACE_CATALOG_URI", "index": "FACETRACE_INDEX_URI"}


@dataclass(frozen=True)
class DataDirectoryRecord:
    """What facetrace.json holds: the catalog and index URIs (None: the default inside the directory)."""

    catalog_uri: str | None
    index_uri: str | None
    created_at: str
    version: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "catalog_uri": self.catalog_uri,
            "index_uri": self.index_uri,
            "created_at": self.created_at,
            "version": self.version,
        }


@dataclass(frozen=True)
class OpenedDirectory:
    """The settings to open the gallery with (recorded URIs filled in), and the record still to write, if any."""

    settings: Settings
    record_to_write: DataDirectoryRecord | None


# -- URIs: one spelling per place, without secrets --------------------------------------------------------------------


def _without_password(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}"))


def catalog_identity(uri: str) -> str:
    """The catalog URI as recorded and compared: no password, one scheme for PostgreSQL's drivers, SQLite's file path
    absolute. Still a URI the catalog opens."""
    scheme, separator, rest = uri.partition("://")
    scheme = scheme.lower()
    if not separator:
        return uri
    if scheme in {"sqlite", "sqlite+pysqlite"}:
        path = rest[1:] if rest.startswith("/") else rest
        if path == "":
            return "sqlite://"
        if path == ":memory:" or path.startswith("file:"):
            return f"sqlite:///{path}"
        return f"sqlite:///{Path(path).expanduser().resolve()}"
    if scheme in {"postgres", "postgresql", "postgresql+psycopg"}:
        scheme = "postgresql"
    return _without_password(f"{scheme}://{rest}")


def index_identity(uri: str) -> str:
    """The index URI as recorded and compared: no password, file paths (FAISS, Milvus Lite) absolute."""
    scheme, separator, rest = uri.partition("://")
    scheme = scheme.lower()
    if not separator:
        return f"faiss://{Path(uri).expanduser().resolve()}"
    if scheme == "faiss" and rest:
        return f"faiss://{Path(rest).expanduser().resolve()}"
    if scheme == "milvus" and (rest.startswith("/") or rest.endswith(".db")):
        return f"milvus://{Path(rest).expanduser().resolve()}"
    return _without_password(f"{scheme}://{rest}")


def _default_catalog(data: Path) -> str:
    return catalog_identity(f"sqlite:///{data / CATALOG_FILE}")


def _default_index(data: Path) -> str:
    return index_identity(f"faiss://{data / 'faces.faiss'}")


# -- the record ------------------------------------------------------------------------------------------------------


def read_record(data: Path) -> DataDirectoryRecord | None:
    """The directory's record, None if it has none; DataDirectoryError if the file is not one."""
    path = data / RECORD_NAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataDirectoryError(f"{path}: cannot read the data directory's record: {exc}") from exc
    try:
        payload = json.loads(raw)
        if not isinstance(payload, dict) or payload.get("format") != RECORD_FORMAT:
            raise ValueError(f"expected an object with format {RECORD_FORMAT}")
        catalog_uri, index_uri = payload.get("catalog_uri"), payload.get("index_uri")
        if not all(uri is None or isinstance(uri, str) for uri in (catalog_uri, index_uri)):
            raise ValueError("catalog_uri and index_uri must be strings or null")
        return DataDirectoryRecord(
            catalog_uri=catalog_uri,
            index_uri=index_uri,
            created_at=str(payload.get("created_at", "")),
            version=str(payload.get("version", "")),
        )
    except ValueError as exc:
        raise DataDirectoryError(f"{path} is not a facetrace data directory record ({exc})") from exc


def write_record(data: Path, record: DataDirectoryRecord) -> None:
    """Write facetrace.json atomically: a reader sees the old file or the new one, never half of one."""
    target = data / RECORD_NAME
    temporary = data / f".{RECORD_NAME}.{os.getpid()}.tmp"
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(record.to_json(), handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def new_record(settings: Settings) -> DataDirectoryRecord:
    """The record of a directory opened with these settings: each URI, or None where it is the default."""
    from facetrace import __version__

    data = settings.data
    catalog = catalog_identity(settings.catalog_uri) if settings.catalog_uri else None
    index = index_identity(settings.index_uri) if settings.index_uri else None
    return DataDirectoryRecord(
        catalog_uri=None if catalog == _default_catalog(data) else catalog,
        index_uri=None if index == _default_index(data) else index,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        version=__version__,
    )


# -- opening -----------------------------------------------------------------------------------------------------------


def open_data_directory(settings: Settings, *, create: bool) -> OpenedDirectory:
    """Check the data directory before anything is opened in it.

    create=False (commands that read): the directory must exist and hold a catalog. create=True (ingest, creating
    the first administrator): a missing directory is made. Either way a URI that differs from the recorded one is
    refused, and a URI not given is taken from the record. Raises DataDirectoryError saying what to do.
    """
    data = settings.data
    if not data.exists():
        if not create:
            raise DataDirectoryError(
                f"data directory {data} does not exist: check --data (or FACETRACE_DATA); "
                "`facetrace ingest` creates a gallery"
            )
        data.mkdir(parents=True, exist_ok=True)
    elif not data.is_dir():
        raise DataDirectoryError(f"data directory {data} is not a directory")
    record = read_record(data)
    if record is None:
        _check_unrecorded(settings, create)
        return OpenedDirectory(settings, new_record(settings) if create else None)
    catalog_uri = _settle("catalog", settings.catalog_uri, record.catalog_uri, data)
    index_uri = _settle("index", settings.index_uri, record.index_uri, data)
    if catalog_uri is None and not (data / CATALOG_FILE).exists():
        raise DataDirectoryError(
            f"data directory {data} holds no catalog: its record ({RECORD_NAME}) names the default {CATALOG_FILE}, "
            "which is missing"
        )
    return OpenedDirectory(settings.model_copy(update={"catalog_uri": catalog_uri, "index_uri": index_uri}), None)


def _settle(kind: str, given: str | None, recorded: str | None, data: Path) -> str | None:
    """The URI to open: the given one if it names the recorded place, the recorded one if none is given."""
    if given is None:
        return recorded
    identity = catalog_identity if kind == "catalog" else index_identity
    default = _default_catalog(data) if kind == "catalog" else _default_index(data)
    if identity(given) != (recorded or default):
        made_with = f"the {kind} {recorded}" if recorded else f"the default {kind} {default}"
        raise DataDirectoryError(
            f"data directory {data} was made with {made_with} (recorded in {data / RECORD_NAME}), but {kind} "
            f"{identity(given)} is given ({_ENV[kind]}): another {kind} would be another gallery. Give the recorded "
            f"{kind} or none, or choose another --data for a new gallery"
        )
    return given


def _check_unrecorded(settings: Settings, create: bool) -> None:
    """A directory without a record: new, or made before records existed (recognised by its catalog.db)."""
    data = settings.data
    if settings.catalog_uri is not None or (data / CATALOG_FILE).exists():
        return
    if not create:
        raise DataDirectoryError(
            f"data directory {data} holds no catalog (no {RECORD_NAME}, no {CATALOG_FILE}): check --data (or "
            "FACETRACE_DATA); `facetrace ingest` creates a gallery"
        )
    traces = [name for name in ("thumbnails", "faces.faiss") if (data / name).exists()]
    if traces:
        raise DataDirectoryError(
            f"data directory {data} holds {' and '.join(traces)} but no {CATALOG_FILE}: it was made with a catalog "
            f"server; give its URI again ({_ENV['catalog']})"
        )
