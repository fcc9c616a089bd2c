"""Milvus as the vector index: Milvus Lite in one local directory, or a Milvus server or cluster over gRPC.

The only module that imports pymilvus. Layout:
- one collection per model, named facetrace_faces_<first 8 hex digits of sha256(model_id)> (Milvus names allow only
  letters, digits and underscores); its properties record the model id, dimension and format version;
- fields id INT64 (primary key, the catalog's face id, never auto-generated) and vector FLOAT_VECTOR(dim), searched by
  inner product (cosine on the unit vectors the embedders produce);
- one location holds one model, like a faiss file: opening it for another model raises ModelMismatchError. A rebuild
  (fresh=True) fills a staging collection beside the live one and save() swaps it in, dropping other models' vectors.

Milvus is eventually consistent by default. Counts and id listings are issued with Strong consistency (they see every
write any process made before them: catch-up and check compare them with the catalog). Searches are issued with
Session consistency: they see every write this process made (pymilvus keeps the last write's timestamp per collection
for the whole process), without waiting for the server's next time tick as a Strong read does (up to 200 ms on a
default server). pymilvus records the timestamps of inserts and upserts but not of deletes (seen with pymilvus 3.0.2
against Milvus 2.3.5), so the first search after a remove() is Strong. Another process's writes reach a search
within a tick; facetrace does not need them sooner, since a process that serves searches applies what other processes
stored or removed (from the catalog) itself before it reads (engine catch-up). Writes persist as they happen; save()
only flushes, and is where a rebuild becomes visible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from facetrace.core.errors import ModelMismatchError, VectorIndexError
from facetrace.core.ports import IdArray
from facetrace.core.types import FloatArray
from facetrace.index.vectors import (
    MISSING_ID,
    MISSING_SIMILARITY,
    check_ids,
    check_k,
    check_vectors,
    last_occurrence,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
COLLECTION_PREFIX = "facetrace_faces_"
STAGING_SUFFIX = "_rebuild"
ID_FIELD = "id"
VECTOR_FIELD = "vector"
METRIC = "IP"
CONSISTENCY = "Strong"
SEARCH_CONSISTENCY = "Session"
DEFAULT_PORT = 19530
# Milvus refuses a search whose limit (top-k) or number of queries exceeds 16384.
MAX_TOP_K = 16_384
MAX_QUERIES_PER_REQUEST = 1_024
# A FLAT collection compares every query with every stored vector, so a search request's work is queries x vectors.
# Batches are cut to about this many comparisons a request (64 queries at 1M vectors), which a small server answers
# well inside the request timeout: 500 queries at 1M x 128 in one request ran past 60 s on a 2-core machine. Up to
# MIN_QUERIES_PER_REQUEST queries go in one request without counting the collection first.
COMPARISONS_PER_REQUEST = 64_000_000
MIN_QUERIES_PER_REQUEST = 16
# Keep each write request well under gRPC's default 64 MiB message limit.
MAX_WRITE_BYTES = 8 * 1024 * 1024
MAX_IDS_PER_REQUEST = 4_096
ID_PAGE_SIZE = 10_000
DEFAULT_TIMEOUT_S = 60.0
REBUILD_HINT = "run `facetrace index rebuild` to recreate it from the catalog"

_PROPERTY_MODEL = "facetrace.model_id"
_PROPERTY_DIM = "facetrace.dim"
_PROPERTY_FORMAT = "facetrace.format_version"
_LIVE_NAME = re.compile(rf"^{COLLECTION_PREFIX}[0-9a-f]{{8}}$")


@dataclass(frozen=True)
class MilvusLocation:
    """Where a Milvus index lives: what pymilvus connects to, and how to name it in messages (never with secrets)."""

    client_uri: str
    display: str
    token: str = ""
    db_name: str = ""

    @property
    def is_lite(self) -> bool:
        return self.client_uri.endswith(".db")


def parse_milvus_uri(uri: str) -> MilvusLocation:
    """Read a facetrace Milvus URI.

    milvus:///abs/path/faces.db       Milvus Lite: an embedded store in that local directory (the name must end in .db)
    milvus://relative/faces.db        the same, relative to the working directory
    milvus://host[:port][/database]   a Milvus server or cluster over plain gRPC (port 19530 by default)
    milvus+https://host[:port][/db]   the same over TLS (e.g. a managed service)
    milvus://user:password@host:port  credentials go to Milvus as the token user:password
    """
    scheme, separator, rest = uri.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in {"milvus", "milvus+http", "milvus+https"}:
        raise VectorIndexError(f"{uri}: not a Milvus URI; use milvus:///path/faces.db or milvus://host:19530")
    if not rest:
        raise VectorIndexError(f"{uri}: a Milvus URI needs a file (milvus:///data/faces.db) or a host (milvus://host)")
    if scheme == "milvus" and (rest.startswith("/") or rest.endswith(".db")):
        if not rest.endswith(".db"):
            raise VectorIndexError(f"{uri}: a Milvus Lite path must end in .db, e.g. milvus:///data/faces.db")
        path = str(Path(rest).absolute())
        return MilvusLocation(client_uri=path, display=f"milvus://{path}")
    parts = urlsplit(f"//{rest}")
    if not parts.hostname:
        raise VectorIndexError(f"{uri}: names no host; use milvus://host:19530")
    try:
        port = parts.port
    except ValueError as exc:
        raise VectorIndexError(f"{uri}: the port is not a number ({exc})") from exc
    transport = "https" if scheme == "milvus+https" else "http"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    address = f"{host}:{port or DEFAULT_PORT}"
    db_name = parts.path.strip("/")
    if "/" in db_name:
        raise VectorIndexError(f"{uri}: the path after the host must be a single database name")
    token = ""
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    display = f"{scheme}://{address}" + (f"/{db_name}" if db_name else "")
    return MilvusLocation(client_uri=f"{transport}://{address}", display=display, token=token, db_name=db_name)


def collection_name_for(model_id: str) -> str:
    """The live collection of one model's vectors: model ids may hold characters Milvus names cannot."""
    return COLLECTION_PREFIX + hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class _StoredCollection:
    name: str
    model_id: str | None
    dim: int


class MilvusIndex:
    """A VectorIndex in Milvus (Lite or server). Writes are visible at once and persist without save().

    fresh=True starts empty without touching the live collection: vectors go to a staging collection that save()
    swaps in (how `facetrace index rebuild` recovers from a wrong or damaged index). Until then, other readers keep
    the old contents; a staging collection left by a crash is dropped by the next fresh open.
    """

    def __init__(
        self,
        location: MilvusLocation,
        model_id: str,
        dim: int,
        *,
        fresh: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self._location = location
        self._model_id = model_id
        self._dim = int(dim)
        self._timeout_s = timeout_s
        self._lock = threading.RLock()
        self._live_name = collection_name_for(model_id)
        self._staging = fresh
        self._collection = self._live_name + STAGING_SUFFIX if fresh else self._live_name
        self._unflushed = False
        # Removes made, and how many of them a (Strong) search has seen: the others a Session search might miss.
        self._removals = self._removals_seen = 0
        self._client = self._connect()
        try:
            with self._milvus_errors("open"):
                if fresh:
                    self._drop_if_exists(self._collection)
                    self._create_collection(self._collection)
                else:
                    self._open_live()
        except BaseException:
            self.close()
            raise

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def location(self) -> MilvusLocation:
        return self._location

    @property
    def collection_name(self) -> str:
        """The collection this index reads and writes (the staging one until a fresh index is saved)."""
        return self._collection

    def __len__(self) -> int:
        with self._milvus_errors("count"):
            rows = self._client.query(
                self._collection,
                filter="",
                output_fields=["count(*)"],
                consistency_level=CONSISTENCY,
                timeout=self._timeout_s,
            )
        return int(rows[0]["count(*)"]) if rows else 0

    def __repr__(self) -> str:
        return (
            f"MilvusIndex(location={self._location.display!r}, collection={self._collection!r}, "
            f"model_id={self._model_id!r}, dim={self._dim})"
        )

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        vectors = check_vectors(vectors, self._dim)
        ids = check_ids(ids, vectors.shape[0])
        ids, vectors = last_occurrence(ids, vectors)
        if ids.size == 0:
            return
        rows_per_request = max(1, MAX_WRITE_BYTES // (self._dim * 4))
        id_list = ids.tolist()
        with self._lock, self._milvus_errors("add"):
            self._unflushed = True
            for start in range(0, len(id_list), rows_per_request):
                stop = start + rows_per_request
                # Plain lists: pymilvus packs them faster than numpy rows.
                rows = [
                    {ID_FIELD: face_id, VECTOR_FIELD: vector}
                    for face_id, vector in zip(id_list[start:stop], vectors[start:stop].tolist(), strict=True)
                ]
                # Upsert, not insert: Milvus would otherwise keep both rows of a repeated primary key.
                self._client.upsert(self._collection, rows, timeout=self._timeout_s)

    def remove(self, ids: IdArray) -> int:
        ids = np.unique(check_ids(ids))
        removed = 0
        with self._lock, self._milvus_errors("remove"):
            for start in range(0, ids.size, MAX_IDS_PER_REQUEST):
                # Milvus's delete count is the number of ids asked for, so look up which are really present.
                present = self._present_ids(ids[start : start + MAX_IDS_PER_REQUEST].tolist())
                if present:
                    self._unflushed = True
                    self._client.delete(self._collection, ids=present, timeout=self._timeout_s)
                    self._removals += 1
                    removed += len(present)
        return removed

    def search(self, queries: FloatArray, k: int, *, filter_expr: str = "") -> tuple[FloatArray, IdArray]:
        """Top-k by cosine similarity, like every VectorIndex. filter_expr is a Milvus boolean expression over the
        stored fields (today only id, e.g. "id in [1, 2]"), for searches restricted to part of the gallery."""
        queries = check_vectors(queries, self._dim, what="queries")
        k = check_k(k)
        n_queries = queries.shape[0]
        similarities = np.full((n_queries, k), MISSING_SIMILARITY, dtype=np.float32)
        result_ids = np.full((n_queries, k), MISSING_ID, dtype=np.int64)
        if n_queries == 0:
            return similarities, result_ids
        limit = k
        if k > MAX_TOP_K:
            limit = min(k, len(self))
            if limit > MAX_TOP_K:
                raise VectorIndexError(
                    f"{self._location.display}: Milvus returns at most {MAX_TOP_K} results per query; "
                    f"asked for {k} from {limit} vectors"
                )
            if limit == 0:
                return similarities, result_ids
        per_request = self._queries_per_request(n_queries)
        removals = self._removals
        consistency = CONSISTENCY if removals != self._removals_seen else SEARCH_CONSISTENCY
        with self._milvus_errors("search"):
            for start in range(0, n_queries, per_request):
                batch = queries[start : start + per_request]
                hits_per_query = self._client.search(
                    self._collection,
                    data=list(batch),
                    filter=filter_expr,
                    limit=limit,
                    output_fields=[ID_FIELD],
                    search_params={"metric_type": METRIC},
                    anns_field=VECTOR_FIELD,
                    consistency_level=consistency,
                    timeout=self._timeout_s,
                )
                for offset, hits in enumerate(hits_per_query):
                    _fill_row(hits, similarities[start + offset], result_ids[start + offset])
        if consistency == CONSISTENCY:
            self._removals_seen = max(self._removals_seen, removals)
        return similarities, result_ids

    def _queries_per_request(self, n_queries: int) -> int:
        if n_queries <= MIN_QUERIES_PER_REQUEST:
            return n_queries
        by_work = COMPARISONS_PER_REQUEST // max(len(self), 1)
        return max(MIN_QUERIES_PER_REQUEST, min(MAX_QUERIES_PER_REQUEST, by_work))

    def ids(self) -> IdArray:
        """Every stored id, sorted; pages through the collection so a large gallery is never one response."""
        pages: list[IdArray] = []
        with self._milvus_errors("list ids"):
            iterator = self._client.query_iterator(
                self._collection,
                batch_size=ID_PAGE_SIZE,
                output_fields=[ID_FIELD],
                consistency_level=CONSISTENCY,
                timeout=self._timeout_s,
            )
            try:
                while page := iterator.next():
                    pages.append(np.fromiter((row[ID_FIELD] for row in page), dtype=np.int64, count=len(page)))
            finally:
                iterator.close()
        if not pages:
            return np.empty(0, dtype=np.int64)
        return np.sort(np.concatenate(pages))

    def settle(self, timeout: float | None = None) -> bool:
        """No background work here."""
        return True

    def save(self) -> None:
        """Flush written vectors to durable segments; for a fresh index, also swap it in as the live collection."""
        with self._lock, self._milvus_errors("save"):
            if self._unflushed or self._staging:
                self._client.flush(self._collection, timeout=self._timeout_s)
                self._unflushed = False
            if self._staging:
                self._promote_staging()

    def close(self) -> None:
        """Release the connection (a Milvus Lite store stays open in this process until exit or another close)."""
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                client.close()
            except MilvusException as exc:
                logger.debug("closing %s: %s", self._location.display, exc)

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- opening and layout -------------------------------------------------------------------------------------

    def _connect(self) -> Any:
        location = self._location
        if location.is_lite:
            Path(location.client_uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            client = MilvusClient(
                uri=location.client_uri, token=location.token, db_name=location.db_name, timeout=self._timeout_s
            )
        except MilvusException as exc:
            why = "in use by another process, or unreadable" if location.is_lite else "unreachable or refusing us"
            raise VectorIndexError(f"{location.display}: cannot open the Milvus index ({why}): {exc}") from exc
        if location.db_name:
            try:
                self._create_database_if_missing(client, location.db_name)
            except BaseException:
                client.close()
                raise
        return client

    def _create_database_if_missing(self, client: Any, db_name: str) -> None:
        """A database named in the URI is created on first use, as a data directory's catalog and index are. (The
        client names its database in every request, so it may be created after the client; pymilvus's
        use_database() is not used: it asks for DescribeDatabase, which Milvus servers before 2.4 lack.)"""
        with self._milvus_errors(f"open database {db_name!r}"):
            if db_name in client.list_databases(timeout=self._timeout_s):
                return
            try:
                client.create_database(db_name, timeout=self._timeout_s)
            except MilvusException:
                # Another process (a second replica starting) may have created it since we looked.
                if db_name not in client.list_databases(timeout=self._timeout_s):
                    raise
                return
            logger.info("created Milvus database %s at %s", db_name, self._location.display)

    def _open_live(self) -> None:
        for stored in self._stored_collections():
            if stored.name == self._live_name:
                continue
            if stored.model_id is None:
                raise VectorIndexError(
                    f"{self._location.display}: collection {stored.name} does not record which model made its "
                    f"vectors; {REBUILD_HINT}"
                )
            raise ModelMismatchError(
                expected=stored.model_id, actual=self._model_id, where=f"Milvus index {self._location.display}"
            )
        if not self._client.has_collection(self._live_name, timeout=self._timeout_s):
            self._create_collection(self._live_name)
            return
        stored = self._describe(self._live_name)
        if stored.model_id != self._model_id:
            if stored.model_id is None:
                raise VectorIndexError(
                    f"{self._location.display}: collection {stored.name} does not record which model made its "
                    f"vectors; {REBUILD_HINT}"
                )
            raise ModelMismatchError(
                expected=stored.model_id, actual=self._model_id, where=f"Milvus index {self._location.display}"
            )
        if stored.dim != self._dim:
            raise VectorIndexError(
                f"{self._location.display}: collection {stored.name} holds {stored.dim}-dimensional vectors, "
                f"not {self._dim}; {REBUILD_HINT}"
            )
        index_description = self._client.describe_index(self._live_name, VECTOR_FIELD, timeout=self._timeout_s)
        if not index_description:
            # Another process that is creating this collection (replicas starting together) may not have indexed it
            # yet: create the same index (Milvus accepts an identical one twice) and read it back.
            self._create_index(self._live_name)
            index_description = self._client.describe_index(self._live_name, VECTOR_FIELD, timeout=self._timeout_s)
        metric = index_description.get("metric_type")
        if str(metric).upper() != METRIC:
            raise VectorIndexError(
                f"{self._location.display}: collection {stored.name} is indexed for {metric} similarity, "
                f"not inner product; {REBUILD_HINT}"
            )
        self._ensure_loaded(self._live_name)

    def _stored_collections(self) -> list[_StoredCollection]:
        """The live facetrace collections at this location (staging ones are unfinished rebuilds, not contents)."""
        names = sorted(self._client.list_collections(timeout=self._timeout_s))
        return [self._describe(name) for name in names if _LIVE_NAME.match(name)]

    def _describe(self, name: str) -> _StoredCollection:
        description = self._client.describe_collection(name, timeout=self._timeout_s)
        properties: Mapping[str, Any] = description.get("properties") or {}
        recorded: Mapping[str, Any] = properties
        if _PROPERTY_MODEL not in properties:
            # Some deployments keep the description but not custom properties: both are written, either will do.
            recorded = _description_record(str(description.get("description") or ""))
        model_id = recorded.get(_PROPERTY_MODEL)
        dim: int | None = None
        for field in description.get("fields", []):
            if field.get("name") == VECTOR_FIELD and field.get("type") == DataType.FLOAT_VECTOR:
                dim = int(field.get("params", {}).get("dim", 0)) or None
        if dim is None:
            raise VectorIndexError(
                f"{self._location.display}: collection {name} has no {VECTOR_FIELD!r} float-vector field, so it "
                f"is not a facetrace index; {REBUILD_HINT}"
            )
        return _StoredCollection(name=name, model_id=None if model_id is None else str(model_id), dim=dim)

    def _create_collection(self, name: str) -> None:
        record = {_PROPERTY_MODEL: self._model_id, _PROPERTY_DIM: str(self._dim), _PROPERTY_FORMAT: str(FORMAT_VERSION)}
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, DataType.INT64, is_primary=True, auto_id=False)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=self._dim)
        self._client.create_collection(
            name,
            schema=schema,
            consistency_level=CONSISTENCY,
            description=json.dumps(record, sort_keys=True),
            properties=record,
            timeout=self._timeout_s,
        )
        self._create_index(name)
        self._ensure_loaded(name)
        logger.info("created Milvus collection %s for model %s in %s", name, self._model_id, self._location.display)

    def _create_index(self, name: str) -> None:
        index_params = self._client.prepare_index_params()
        index_type, build_params = index_type_for_size(0)
        index_params.add_index(field_name=VECTOR_FIELD, index_type=index_type, metric_type=METRIC, params=build_params)
        # sync=False: the collection is new, so there is no index to wait for (pymilvus would poll for >= 0.5 s).
        self._client.create_index(name, index_params, sync=False, timeout=self._timeout_s)

    def _ensure_loaded(self, name: str) -> None:
        # A collection must be loaded into memory before Milvus will search it (after a restart or a rename too).
        state = self._client.get_load_state(name, timeout=self._timeout_s).get("state")
        if getattr(state, "name", str(state)) != "Loaded":
            self._client.load_collection(name, timeout=self._timeout_s)

    def _promote_staging(self) -> None:
        """Make the rebuilt collection live, then drop every other model's vectors: the location holds one model."""
        # Milvus cannot rename over an existing collection, so readers see no live collection between these two
        # calls (milliseconds); a crash between them leaves the rebuilt vectors in the staging collection.
        self._drop_if_exists(self._live_name)
        self._client.rename_collection(self._collection, self._live_name, timeout=self._timeout_s)
        self._collection = self._live_name
        self._staging = False
        self._ensure_loaded(self._live_name)
        for name in self._client.list_collections(timeout=self._timeout_s):
            if name.startswith(COLLECTION_PREFIX) and name != self._live_name:
                self._drop_if_exists(name)
        logger.info("rebuilt Milvus collection %s is live in %s", self._live_name, self._location.display)

    def _drop_if_exists(self, name: str) -> None:
        if self._client.has_collection(name, timeout=self._timeout_s):
            self._client.drop_collection(name, timeout=self._timeout_s)

    def _present_ids(self, ids: list[int]) -> list[int]:
        rows = self._client.query(
            self._collection,
            ids=ids,
            output_fields=[ID_FIELD],
            consistency_level=CONSISTENCY,
            timeout=self._timeout_s,
        )
        return [int(row[ID_FIELD]) for row in rows]

    @contextmanager
    def _milvus_errors(self, action: str) -> Iterator[None]:
        """Milvus's own exceptions stop here: callers see VectorIndexError naming the location and the action."""
        try:
            yield
        except MilvusException as exc:
            raise VectorIndexError(
                f"{self._location.display}: Milvus {action} failed on collection {self._collection}: {exc}"
            ) from exc


def index_type_for_size(expected_count: int) -> tuple[str, dict[str, Any]]:
    """The Milvus index type (and build parameters) for a gallery of about expected_count vectors.

    FLAT (exact) for every size for now, like the faiss backend; an approximate type such as HNSW for very large
    galleries on a cluster goes here (its search parameters beside it in search()).
    """
    del expected_count
    return "FLAT", {}


def _description_record(description: str) -> Mapping[str, Any]:
    try:
        record = json.loads(description)
    except json.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}


def _fill_row(hits: Any, similarities: FloatArray, ids: IdArray) -> None:
    """Copy one query's hits into its result row, best first, equal scores by smaller id (as the exact oracle does)."""
    if not hits:
        return
    found_ids = np.fromiter((hit["id"] for hit in hits), dtype=np.int64, count=len(hits))
    found_similarities = np.fromiter((hit["distance"] for hit in hits), dtype=np.float32, count=len(hits))
    order = np.lexsort((found_ids, -found_similarities))[: ids.shape[0]]
    similarities[: order.size] = found_similarities[order]
    ids[: order.size] = found_ids[order]
