"""The composition root: reads Settings, builds each adapter and service once, and owns the lock discipline.

    from facetrace import open_engine
    with open_engine("~/faces") as engine:
        engine.ingest.run(["photos/"])
        for result in engine.search.file("probe.jpg"):
            ...

The public surface is the services: engine.<service>.<verb>, the same for the CLI, the HTTP server and Python.
open_engine creates a missing data directory by default (create=True, as the example above expects); the CLI's
commands that read pass create=False, which refuses a directory that does not exist or holds no catalog. Either way
the directory's recorded catalog and index (engine/datadir.py) are used, and a different one given is refused.
Services that need the models or the index are built on first use (a `users` command loads neither); none writes
when it is built or read.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import ValidationError

from facetrace.catalog import open_catalog
from facetrace.config import Settings
from facetrace.core.errors import ConfigError, DataDirectoryError
from facetrace.core.ports import Catalog, FaceAnalyzer, VectorIndex
from facetrace.core.types import FaceRecord
from facetrace.engine import audit_key, datadir
from facetrace.engine.clustering import Clusters
from facetrace.engine.gallery import Gallery
from facetrace.engine.ingesting import Ingestion
from facetrace.engine.locking import DataLock
from facetrace.engine.maintenance import IndexMaintenance
from facetrace.engine.probe_pool import ProbePool
from facetrace.engine.searching import Searches
from facetrace.engine.transparency import Transparency
from facetrace.governance.audit import AuditLog
from facetrace.governance.cases import CaseService
from facetrace.governance.erasure import (
    ERASURE_FALSE_MATCH_RATE,
    ERASURE_LINKED_FALSE_MATCH_RATE,
    STRICT_FALSE_MATCH_RATE,
    ErasureService,
    ErasureThresholds,
    SuppressionList,
)
from facetrace.governance.retention import RetentionService
from facetrace.governance.users import UserService
from facetrace.index import open_index
from facetrace.ingest.sources import read_uri
from facetrace.search.calibration import ScoreCalibrator
from facetrace.search.clustering import ClusteringThresholds, thresholds_for
from facetrace.search.identities import IdentityClusters
from facetrace.search.service import SearchService
from facetrace.vision.analyzer import open_analyzer, thumbnail_jpeg
from facetrace.vision.packs import ModelPack, PackInfo, add_pack, list_packs, load_pack, verify_pack
from facetrace.vision.signatures import same_photo_correlation

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class Engine:
    """One data directory's gallery and governance, wired once.

    Services: search, gallery, ingest, index (check/repair/rebuild), clusters, cases, users, audit, erasure,
    retention. lock is the engine's lock discipline (engine/locking.py): searches share it, writes take it alone and
    hold the data directory's writer lock across processes; models never run under it.

    create=True makes a missing data directory and records the catalog and index it is opened with; create=False
    refuses a directory that does not exist or holds no catalog (DataDirectoryError). Settings' catalog_uri and
    index_uri not given are the directory's recorded ones; given ones must name the recorded places.
    """

    def __init__(
        self, settings: Settings, *, on_wait: Callable[[str], None] | None = None, create: bool = True
    ) -> None:
        opened = datadir.open_data_directory(settings, create=create)
        self.settings = settings = opened.settings
        self.pack: ModelPack = load_pack(settings.pack, data_dir=settings.data)
        self.catalog: Catalog = open_catalog(settings.resolved_catalog_uri)
        if opened.record_to_write is not None:
            try:
                datadir.write_record(settings.data, opened.record_to_write)
            except OSError as exc:
                self.catalog.close()
                raise DataDirectoryError(f"{settings.data}: cannot record the catalog and index: {exc}") from exc
        self.index = IndexMaintenance(
            self.catalog,
            self._open_index,
            self.pack.model_id,
            thumbnails_dir=settings.thumbnails_dir,
            make_thumbnail=self._remake_thumbnail,
        )
        self.lock = DataLock(settings.data, self.index, on_wait=on_wait)
        self.index.lock = self.lock
        governance = self.catalog.governance_store()
        self.audit = AuditLog(governance)
        key_file = settings.resolved_audit_key_file
        self.audit.key = audit_key.load_or_create(key_file, self.audit.length)
        self.audit.heads = audit_key.HeadFile(key_file.with_name(audit_key.HEAD_FILE_NAME), self.audit.key)
        self.users = UserService(governance, self.audit)
        self.transparency = Transparency(self.audit, self.catalog)
        calibrated = self.pack.calibration is not None
        self.cases = CaseService(
            governance,
            self.audit,
            self.strict_similarity if calibrated else math.inf,
            self.settings.independent_review,
        )
        # Erased people's embeddings, read from the catalog once per change (its change counters say when).
        self.suppression = SuppressionList(governance, self.model_id, self.strict_similarity) if calibrated else None
        self._built: dict[str, object] = {}
        self._build_lock = threading.RLock()

    # -- wiring -------------------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.pack.model_id

    def _open_index(self, **options: Any) -> VectorIndex:
        return open_index(
            self.settings.resolved_index_uri,
            self.model_id,
            self.pack.embedding_dim,
            target_recall=self.settings.target_recall,
            **options,
        )

    def _remake_thumbnail(self, face: FaceRecord) -> bytes:
        """A face's crop made again from its source photo (check --repair of a lost thumbnail)."""
        data = read_uri(face.asset_uri)
        return thumbnail_jpeg(data, face.asset_uri, face.box, max_pixels=self.settings.max_image_pixels)

    def _once(self, name: str, build: Callable[[], _T]) -> _T:
        """Build a service on first use, once, also when several threads ask at the same moment."""
        with self._build_lock:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]  # type: ignore[return-value]

    def analyzer_factory(self) -> Callable[[], FaceAnalyzer]:
        """A picklable recipe for an analyzer, so each worker process builds its own."""
        return functools.partial(open_analyzer, self.settings.analyzer_options())

    @property
    def analyzer(self) -> FaceAnalyzer:
        """This process's analyzer (the models, loaded on first use; safe to share between threads)."""
        return self._once("analyzer", lambda: self.analyzer_factory()())

    @property
    def calibrator(self) -> ScoreCalibrator:
        return ScoreCalibrator(self.pack.calibration)

    @property
    def strict_similarity(self) -> float:
        """The similarity at a false-match rate of 1e-6 for this pack: suppression matches at or above it (ingest
        drops and search hides such a face, with nobody reviewing it), and a probe this close to an earlier one
        counts as the same person searched again."""
        if self.pack.calibration is None:
            raise ConfigError(f"pack {self.pack.id} has no calibration: suppression needs a strict threshold")
        return self.calibrator.similarity_at(STRICT_FALSE_MATCH_RATE)

    @property
    def erasure_thresholds(self) -> ErasureThresholds:
        """What an erasure lists, for this pack: faces at the similarity of a false-match rate of 3e-5 to the
        requester's face, and of 5e-6 to a face already listed (one step); recall matters there, and a person
        confirms the list (governance/erasure.py, docs/service.md "Erasure")."""
        if self.pack.calibration is None:
            raise ConfigError(f"pack {self.pack.id} has no calibration: erasure by photo needs its thresholds")
        calibrator = self.calibrator
        return ErasureThresholds(
            similarity=calibrator.similarity_at(ERASURE_FALSE_MATCH_RATE),
            linked_similarity=calibrator.similarity_at(ERASURE_LINKED_FALSE_MATCH_RATE),
        )

    def clustering_thresholds(self) -> ClusteringThresholds:
        """The default conservative thresholds, as false-match rates of this pack's calibration."""
        if self.pack.calibration is None:
            raise ConfigError(f"pack {self.pack.id} has no calibration: clustering thresholds cannot be derived")
        return thresholds_for(self.calibrator)

    # -- services -------------------------------------------------------------------------------------------------

    @property
    def search(self) -> Searches:
        return self._once(
            "search",
            lambda: Searches(
                lambda: self.analyzer,
                self._search_service,
                self.cases,
                self.audit,
                self._once("probe_pool", lambda: ProbePool(self.settings.analyzer_options().analysis_slots)),
                model_id=self.model_id,
                top_k=self.settings.top_k,
            ),
        )

    def _search_service(self) -> SearchService:
        return self._once(
            "search_service",
            lambda: SearchService(
                self.analyzer,
                self.catalog,
                self.index.current,
                self.calibrator,
                thumbnails_dir=self.settings.thumbnails_dir,
                suppression=self.suppression,
                guard=self.lock,
                photo_correlation=same_photo_correlation,
            ),
        )

    @property
    def gallery(self) -> Gallery:
        return self._once(
            "gallery",
            lambda: Gallery(
                self.catalog,
                self.audit,
                self.settings.thumbnails_dir,
                model_id=self.model_id,
                clusters=self.catalog.cluster_store(),
            ),
        )

    @property
    def ingest(self) -> Ingestion:
        return self._once(
            "ingest",
            lambda: Ingestion(
                self.settings,
                self.catalog,
                self.index.current,
                self.lock,
                lambda: self.clusters,
                analyzer_factory=self.analyzer_factory,
                suppression=self.suppression,
                model_id=self.model_id,
                clusters_at_ingest=self.settings.cluster_at_ingest and self.pack.calibration is not None,
            ),
        )

    @property
    def erasure(self) -> ErasureService:
        return self._once(
            "erasure",
            lambda: ErasureService(
                self.catalog,
                self.index.current,
                self.catalog.governance_store(),
                self.audit,
                self.settings.thumbnails_dir,
                model_id=self.model_id,
                thresholds=self.erasure_thresholds,
                uploads_dir=self.settings.uploads_dir,
                guard=self.lock,
                analyzer=self.analyzer,
            ),
        )

    @property
    def retention(self) -> RetentionService:
        return self._once(
            "retention",
            lambda: RetentionService(
                self.catalog,
                self.index.current,
                self.audit,
                self.settings.thumbnails_dir,
                model_id=self.model_id,
                guard=self.lock,
            ),
        )

    @property
    def clusters(self) -> Clusters:
        return self._once(
            "clusters",
            lambda: Clusters(
                self.catalog,
                self.catalog.cluster_store(),
                self.audit,
                analyzer=lambda: self.analyzer,
                identities=self._identities,
                thresholds=self.clustering_thresholds,
                model_id=self.model_id,
                embedding_dim=self.pack.embedding_dim,
            ),
        )

    def _identities(self) -> IdentityClusters:
        return self._once(
            "identities",
            lambda: IdentityClusters(
                self.catalog.cluster_store(),
                self.catalog,
                self.index.current,
                self.model_id,
                self.clustering_thresholds(),
                guard=self.lock,
            ),
        )

    def stats(self) -> dict[str, Any]:
        with self.lock.reading():
            stored = self.index.stored
            entries = len(stored)
        return {
            "data_dir": str(self.settings.data),
            "catalog_uri": datadir.catalog_identity(self.settings.resolved_catalog_uri),
            "index_uri": datadir.index_identity(self.settings.resolved_index_uri),
            "model_pack": self.pack.id,
            "model_id": self.model_id,
            "catalog": self.catalog.stats(),
            "index_entries": entries,
            # The backend's own account (FAISS: its structure and measured operating point), where it gives one.
            "index": describe() if callable(describe := getattr(stored, "describe", None)) else None,
        }

    def close(self) -> None:
        pool = self._built.get("probe_pool")
        if isinstance(pool, ProbePool):
            pool.close()  # searches still running finish before the index closes
        self.index.close()
        self.catalog.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_engine(
    data: str | Path | None = None,
    *,
    create: bool = True,
    on_wait: Callable[[str], None] | None = None,
    **overrides: Any,
) -> Engine:
    """An engine over one data directory (default: FACETRACE_DATA or the user's data dir); overrides are Settings
    fields, e.g. workers=1, catalog_uri="postgresql://…". on_wait is told when a write waits for another process.

    create=True (the default) makes the directory if it is missing and records its catalog and index URIs;
    create=False refuses a directory that does not exist or holds no catalog. A catalog_uri or index_uri that differs
    from the directory's recorded one raises DataDirectoryError; one not given is the recorded one."""
    if data is not None:
        overrides["data"] = Path(data).expanduser().resolve()
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from exc
    return Engine(settings, on_wait=on_wait, create=create)


# -- model packs: no catalog needed, so these are functions of the data directory alone ------------------------------


def _data_dir(data: str | Path | None) -> Path:
    return Path(data).expanduser() if data is not None else Settings().data


def list_model_packs(data: str | Path | None = None) -> list[PackInfo]:
    """Built-in packs, then packs added to the data directory (a broken one is listed with its problem)."""
    return list_packs(_data_dir(data))


def verify_model_pack(name_or_path: str | None = None, data: str | Path | None = None) -> ModelPack:
    """Check a pack's files (sha256, graph shapes) and run each model once; raises ModelPackError naming the fault."""
    return verify_pack(name_or_path, _data_dir(data))


def add_model_pack(path: str | Path, data: str | Path | None = None) -> ModelPack:
    """Validate a pack folder and copy it into the data directory, where --pack ID then finds it."""
    directory = _data_dir(data)
    directory.mkdir(parents=True, exist_ok=True)
    return add_pack(Path(path), directory)
