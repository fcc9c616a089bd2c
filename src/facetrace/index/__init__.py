"""Vector indexes over one model's embeddings, derived from the catalog and rebuildable from it.

open_index() picks the backend from a URI:
    memory://                      ExactMemoryIndex (exact, in-process, nothing persisted)
    faiss:///abs/path/faces.faiss  FaissIndex in that file (plus faces.faiss.meta.json beside it)
    faiss://relative/faces.faiss   the same, relative to the working directory
    /any/path/faces.faiss          a plain path means FAISS
    milvus:///abs/path/faces.db    Milvus Lite, embedded in that local directory (needs facetrace[milvus])
    milvus://host:19530[/db]       a Milvus server or cluster (milvus+https:// for TLS)
"""

from __future__ import annotations

import os
from pathlib import Path

from facetrace.core.errors import VectorIndexError
from facetrace.core.ports import VectorIndex
from facetrace.index.memory_backend import ExactMemoryIndex
from facetrace.index.vectors import MISSING_ID, MISSING_SIMILARITY, VectorShapeError

MILVUS_SCHEMES = frozenset({"milvus", "milvus+http", "milvus+https"})

__all__ = [
    "MISSING_ID",
    "MISSING_SIMILARITY",
    "ExactMemoryIndex",
    "VectorShapeError",
    "open_index",
]


def open_index(
    uri_or_path: str | os.PathLike[str],
    model_id: str,
    dim: int,
    *,
    fresh: bool = False,
    expected_count: int | None = None,
    target_recall: float | None = None,
) -> VectorIndex:
    """Open (or start empty) the index the URI names, for embeddings of model_id with dimension dim.

    fresh=True ignores what is stored and starts empty; the next save() replaces it (for rebuilding).
    expected_count (how many faces a new or fresh index is about to receive, e.g. the catalog's count at a rebuild)
    lets FAISS pick its structure up front (exact, or IVF with re-ranking for large galleries); others ignore it.
    target_recall (recall@1 against exact search) is what an approximate FAISS index tunes its search depth to reach
    when it is trained and when it has doubled since (default 0.99); others ignore it.
    Raises ModelMismatchError if a stored index holds another model's vectors, and VectorIndexError for an
    unknown scheme or an unusable file.
    """
    if isinstance(uri_or_path, os.PathLike):
        return _open_faiss(Path(uri_or_path), model_id, dim, fresh, expected_count, target_recall)
    uri = str(uri_or_path)
    scheme, separator, rest = uri.partition("://")
    if not separator:
        return _open_faiss(Path(uri), model_id, dim, fresh, expected_count, target_recall)
    scheme = scheme.lower()
    if scheme == "memory":
        return ExactMemoryIndex(model_id, dim)
    if scheme == "faiss":
        if not rest:
            raise VectorIndexError(f"{uri}: a faiss URI needs a file path, e.g. faiss:///data/faces.faiss")
        return _open_faiss(Path(rest), model_id, dim, fresh, expected_count, target_recall)
    if scheme in MILVUS_SCHEMES:
        return _open_milvus(uri, model_id, dim, fresh)
    raise VectorIndexError(
        f"{uri}: unknown index scheme {scheme!r}; use memory://, faiss:///path, milvus:///path.db, "
        "milvus://host:19530 or a file path"
    )


def _open_faiss(
    path: Path, model_id: str, dim: int, fresh: bool, expected_count: int | None, target_recall: float | None
) -> VectorIndex:
    # Imported here so that importing facetrace.index (or using the memory backend) does not load faiss.
    from facetrace.index.faiss.backend import FaissIndex

    # Served and ingested indexes switch structure in the background (searches never wait for a training run);
    # Engine.close() settles before its last save.
    from facetrace.index.faiss.sizing import DEFAULT_TARGET_RECALL

    return FaissIndex(
        path,
        model_id,
        dim,
        fresh=fresh,
        expected_count=expected_count,
        background_restructure=True,
        target_recall=DEFAULT_TARGET_RECALL if target_recall is None else target_recall,
    )


def _open_milvus(uri: str, model_id: str, dim: int, fresh: bool) -> VectorIndex:
    # Imported here for the same reason as faiss, and because pymilvus is an optional extra.
    try:
        from facetrace.index.milvus_backend import MilvusIndex, parse_milvus_uri
    except ImportError as exc:
        raise VectorIndexError(
            f"{uri}: the Milvus backend needs pymilvus and milvus-lite: pip install 'facetrace[milvus]' ({exc})"
        ) from exc
    return MilvusIndex(parse_milvus_uri(uri), model_id, dim, fresh=fresh)
