"""The files of a FAISS index on disk: the index file, for an approximate index the vectors and row-id files beside
it, and the JSON sidecar that names the model, the dimension, the structure and the size of every file.

load() checks all of that and refuses what it cannot serve (VectorIndexError saying to rebuild; ModelMismatchError
for another model's vectors). save() writes every file to a temporary sibling, fsyncs it and renames it over the old
one, the sidecar last, so a crash leaves the previous set, never a half-written one. Sidecar format 2 says the
vectors file is float16; a format 1 index (float32 vectors) still opens, and is rewritten as format 2 at its next
save.

The sidecar also records a BLAKE2b checksum of every file (key "checksums", by role), verified on open: bytes damaged
on disk at the same size (a bad sector, a stray write) fail the open with the rebuild hint instead of serving
confident wrong answers. A sidecar written before checksums existed opens unverified and gains them at the next
save.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from facetrace.core.errors import ModelMismatchError, StorageFullError, VectorIndexError, is_out_of_space
from facetrace.index.faiss.sizing import DEFAULT_RERANK, Structure, code_for_dim
from facetrace.index.faiss.stores import VECTORS_DTYPE, ExactStore, IvfStore, Store

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
# Formats this facetrace opens, and the dtype of an approximate index's vectors file in each.
VECTORS_DTYPE_BY_FORMAT: dict[int, type[np.floating[Any]]] = {1: np.float32, FORMAT_VERSION: VECTORS_DTYPE}
REBUILD_HINT = "run `facetrace index rebuild` to recreate it from the catalog"
_CHECKSUM_CHUNK = 8 * 1024 * 1024


def meta_path_for(index_path: Path) -> Path:
    """Where the sidecar of an index file lives: next to it, so both move together."""
    return index_path.with_name(index_path.name + ".meta.json")


def vectors_path_for(index_path: Path) -> Path:
    """The full vectors (float16 .npy, memory-mapped; float32 in format 1) of an approximate index, for re-ranking."""
    return index_path.with_name(index_path.name + ".vectors.npy")


def row_ids_path_for(index_path: Path) -> Path:
    """The face id of every row of the vectors file (-1 for a removed row) of an approximate index."""
    return index_path.with_name(index_path.name + ".ids.npy")


def _path_for(index_path: Path, role: str) -> Path:
    """The file of a store's writer role ("index", "vectors" or "ids"; the sidecar records "<role>_file_bytes")."""
    if role == "index":
        return index_path
    return vectors_path_for(index_path) if role == "vectors" else row_ids_path_for(index_path)


# -- loading ----------------------------------------------------------------------------------------------------


def load(path: Path, model_id: str, dim: int) -> tuple[dict[str, Any], Store]:
    """The sidecar and the store saved at path, checked against the model and dimension expected."""
    meta_path = meta_path_for(path)
    meta = _read_meta(path)
    stored_model = str(meta["model_id"])
    if stored_model != model_id:
        raise ModelMismatchError(expected=stored_model, actual=model_id, where=f"index {path}")
    if int(meta["dim"]) != dim:
        raise VectorIndexError(f"{path}: holds {meta['dim']}-dimensional vectors, not {dim}; {REBUILD_HINT}")
    if not path.exists():
        raise VectorIndexError(f"{path}: index file is missing but its sidecar exists; {REBUILD_HINT}")
    _check_size(path, meta.get("file_bytes"))
    _verify_checksum(path, meta, "index")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise VectorIndexError(f"{path}: index file is unreadable ({exc}); {REBUILD_HINT}") from exc
    if index.d != dim:
        raise VectorIndexError(f"{path}: not a facetrace index of dimension {dim}; {REBUILD_HINT}")
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise VectorIndexError(f"{path}: index does not use inner-product similarity; {REBUILD_HINT}")
    layout = meta.get("layout", "exact")
    store: Store
    if layout == "exact":
        if not isinstance(index, faiss.IndexIDMap2):
            raise VectorIndexError(f"{path}: not a facetrace index of dimension {dim}; {REBUILD_HINT}")
        store = ExactStore(dim, index)
    elif layout == "ivf":
        store = _load_ivf(path, dim, meta, index, VECTORS_DTYPE_BY_FORMAT[int(meta["format_version"])])
    else:
        raise VectorIndexError(f"{meta_path}: unknown layout {layout!r}; {REBUILD_HINT}")
    if len(store) != int(meta["count"]):
        raise VectorIndexError(
            f"{path}: holds {len(store)} vectors but its sidecar says {meta['count']}; {REBUILD_HINT}"
        )
    return meta, store


def _load_ivf(path: Path, dim: int, meta: dict[str, Any], index: Any, dtype: type[np.floating[Any]]) -> IvfStore:
    vectors_path = vectors_path_for(path)
    ids_path = row_ids_path_for(path)
    for file, role in ((vectors_path, "vectors"), (ids_path, "ids")):
        if not file.exists():
            raise VectorIndexError(f"{file}: missing, but the sidecar describes an approximate index; {REBUILD_HINT}")
        _check_size(file, meta.get(f"{role}_file_bytes"))
        _verify_checksum(file, meta, role)
    try:
        vectors = np.load(vectors_path, mmap_mode="r")
        row_ids = np.array(np.load(ids_path), dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise VectorIndexError(f"{path}: vectors or ids file is unreadable ({exc}); {REBUILD_HINT}") from exc
    if vectors.dtype != dtype or vectors.ndim != 2 or vectors.shape[1] != dim:
        raise VectorIndexError(
            f"{vectors_path}: not {np.dtype(dtype).name} vectors of dimension {dim} (format "
            f"{meta['format_version']}); {REBUILD_HINT}"
        )
    if row_ids.ndim != 1 or row_ids.shape[0] != vectors.shape[0]:
        raise VectorIndexError(f"{ids_path}: {row_ids.shape} ids for {vectors.shape[0]} rows; {REBUILD_HINT}")
    structure = Structure(
        "ivf",
        nlist=int(meta.get("nlist", 0)),
        code=str(meta.get("code", code_for_dim(dim))),
        nprobe=int(meta.get("nprobe", 0)),
        rerank=int(meta.get("rerank", DEFAULT_RERANK)),
    )
    ivf = None
    if meta.get("trained"):
        ivf = index
        if not isinstance(ivf, faiss.IndexIVF) or not ivf.is_trained:
            raise VectorIndexError(f"{path}: not a trained IVF index; {REBUILD_HINT}")
        live = int((row_ids >= 0).sum())
        if int(ivf.ntotal) != live:
            raise VectorIndexError(f"{path}: IVF holds {ivf.ntotal} vectors but {live} rows are live; {REBUILD_HINT}")
    point = meta.get("operating_point")
    operating_point = point if isinstance(point, dict) else None
    return IvfStore(dim, structure, base=vectors, row_ids=row_ids, ivf=ivf, operating_point=operating_point)


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = meta_path_for(path)
    if not meta_path.exists():
        raise VectorIndexError(
            f"{path}: its sidecar {meta_path.name} is missing, so the model that made these "
            f"vectors is unknown; {REBUILD_HINT}"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VectorIndexError(f"{meta_path}: sidecar is unreadable ({exc}); {REBUILD_HINT}") from exc
    if not isinstance(meta, dict) or not {"model_id", "dim", "count", "format_version"} <= meta.keys():
        raise VectorIndexError(f"{meta_path}: sidecar lacks model_id, dim or count; {REBUILD_HINT}")
    if meta["format_version"] not in VECTORS_DTYPE_BY_FORMAT:
        readable = " or ".join(str(version) for version in VECTORS_DTYPE_BY_FORMAT)
        raise VectorIndexError(
            f"{meta_path}: format version {meta['format_version']} is not {readable}, the ones this "
            f"facetrace reads; {REBUILD_HINT}"
        )
    return cast(dict[str, Any], meta)


def checksum(path: Path) -> str:
    """The BLAKE2b-128 digest of a file, read in chunks (a memory-mapped vectors file is never loaded whole)."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHECKSUM_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_checksum(path: Path, meta: dict[str, Any], role: str) -> None:
    recorded = (meta.get("checksums") or {}).get(role)
    if recorded is None:
        return  # saved before checksums were recorded: the next save records them
    if checksum(path) != recorded:
        raise VectorIndexError(
            f"{path}: its contents do not match the checksum recorded when it was saved (damaged on disk or "
            f"changed by something else); {REBUILD_HINT}"
        )


def _check_size(path: Path, recorded: object) -> None:
    size = path.stat().st_size
    if recorded is not None and int(cast(int, recorded)) != size:
        raise VectorIndexError(
            f"{path}: file is {size} bytes but was saved as {recorded} (truncated or replaced); {REBUILD_HINT}"
        )


# -- saving -----------------------------------------------------------------------------------------------------


def save(path: Path, store: Store, *, model_id: str, dim: int, choice: str) -> None:
    """Write the files of store and the sidecar atomically (an exact store's leftover approximate files removed).
    A full disk raises StorageFullError naming the folder and the file; the temporary files are removed and the
    files saved before stay as they were."""
    try:
        _save(path, store, model_id=model_id, dim=dim, choice=choice)
    except (OSError, RuntimeError) as exc:  # FAISS's writer raises RuntimeError carrying strerror's text
        if is_out_of_space(exc):
            raise StorageFullError(str(path.parent.resolve()), path.name) from exc
        raise


def _save(path: Path, store: Store, *, model_id: str, dim: int, choice: str) -> None:
    meta_path = meta_path_for(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writers = store.writers(vectors_on_disk=vectors_path_for(path).exists())
    targets = [(_path_for(path, role), role) for role in writers]
    # A file kept as it was (an approximate index's unchanged vectors) keeps the checksum it was saved with.
    checksums = {role: value for role, value in _previous_checksums(path).items() if role not in writers}
    _remove_stale_temporaries([target for target, _ in targets] + [meta_path])
    with _temporary_siblings([target for target, _ in targets] + [meta_path]) as temps:
        file_bytes: dict[str, int] = {}
        for (_, role), tmp in zip(targets, temps, strict=False):
            writers[role](tmp)
            _fsync_file(tmp)
            file_bytes[role] = tmp.stat().st_size
            checksums[role] = checksum(tmp)
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "model_id": model_id,
            "dim": dim,
            "count": len(store),
            "structure": store.structure.describe(),
            "choice": choice,
            "file_bytes": file_bytes.get("index", 0),
            # A key of format 2 that nothing sets or reads any more; kept so that the sidecar's keys stay the same.
            "catalog_fingerprint": None,
            "checksums": checksums if isinstance(store, IvfStore) else {"index": checksums["index"]},
            **store.meta(),
        }
        for key, size in file_bytes.items():
            if key != "index":
                meta[f"{key}_file_bytes"] = size
        if isinstance(store, IvfStore) and "vectors_file_bytes" not in meta:
            # A vectors file kept as it was (nothing appended) is described by its current size.
            meta["vectors_file_bytes"] = vectors_path_for(path).stat().st_size
        meta_tmp = temps[-1]
        meta_tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _fsync_file(meta_tmp)
        # The data files first: if the process dies between the renames, the old sidecar's counts and file
        # sizes no longer match and the next open says to rebuild instead of serving stale ids.
        for (target, _), tmp in zip(targets, temps, strict=False):
            os.replace(tmp, target)
        os.replace(meta_tmp, meta_path)
    if isinstance(store, ExactStore):
        for leftover in (vectors_path_for(path), row_ids_path_for(path)):
            leftover.unlink(missing_ok=True)
    else:
        store.saved(vectors_path_for(path))
    _fsync_directory(path.parent)
    logger.debug("saved %d vectors of %s to %s", meta["count"], model_id, path)


def _previous_checksums(path: Path) -> dict[str, str]:
    try:
        previous = json.loads(meta_path_for(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    checksums = previous.get("checksums") if isinstance(previous, dict) else None
    return {str(role): str(value) for role, value in checksums.items()} if isinstance(checksums, dict) else {}


def _remove_stale_temporaries(targets: list[Path]) -> None:
    """Temporary siblings of an earlier save that a killed process left behind (a save that fails removes its own).
    Saves take the data directory's writer lock, so none is being written now."""
    for target in targets:
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            logger.info("removing %s, left by an earlier save that did not finish", stale)
            stale.unlink(missing_ok=True)


@contextmanager
def _temporary_siblings(targets: list[Path]) -> Iterator[list[Path]]:
    """One fresh temp path beside each target (os.replace is atomic only within one file system); removed on error."""
    temps: list[Path] = []
    try:
        for target in targets:
            handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(handle)
            temps.append(Path(name))
        yield temps
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    """Make the renames durable; directories cannot be opened for fsync on Windows, where this is skipped."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
