"""The composition root and Python front door: reads Settings, wires adapters into the use cases.

from facetrace.engine import open_engine
with open_engine("~/faces") as engine:
    engine.ingest(["photos/"])
    for result in engine.search_file("probe.jpg"):
        ...
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import hashlib
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from pydantic import ValidationError

from facetrace.catalog import open_catalog
from facetrace.catalog.governance_store import SqlGovernanceStore
from facetrace.catalog.sql_catalog import SqlCatalog
from facetrace.config import Settings
from facetrace.core.errors import (
    CatalogError,
    ConfigError,
    ConflictError,
    InvalidRequestError,
    NoFaceError,
    NotFoundError,
)
from facetrace.core.ports import FaceAnalyzer, IdArray, VectorIndex
from facetrace.core.types import (
    AnalyzedImage,
    BoundingBox,
    ClusterEvent,
    ErasureReceipt,
    FaceRecord,
    IngestSummary,
    ProbeResult,
    SearchRecord,
    StoredCluster,
    User,
)
from facetrace.governance.audit import AuditLog
from facetrace.governance.cases import CaseService
from facetrace.governance.erasure import ERASURE_FALSE_MATCH_RATE, ErasureService, SuppressionList
from facetrace.governance.retention import PurgeSummary, RetentionService
from facetrace.governance.users import UserService
from facetrace.index import open_index
from facetrace.ingest.opt_out import OptOutList, skip_opted_out
from facetrace.ingest.runner import BatchAnalysis, IngestProgress, IngestRunner
from facetrace.ingest.sources import MAX_FETCH_BYTES, SourceItem, iter_manifest, iter_paths, read_uri
from facetrace.ingest.warc import iter_warc
from facetrace.search.calibration import ScoreCalibrator
from facetrace.search.clustering import Clustering, ClusteringThresholds, cluster, thresholds_for
from facetrace.search.identities import ClusterUpdate, IdentityClusters
from facetrace.search.service import Comparison, SearchService, main_face
from facetrace.vision.analyzer import open_analyzer
from facetrace.vision.packs import ModelPack, PackInfo, add_pack, list_packs, load_pack, verify_pack

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusteredFace:
    """One face that was clustered, and where it came from."""

    source: str  # the image's path or URI
    face_id: int | None  # catalog id, when clustering the catalog
    box: BoundingBox
    main_face: bool  # the largest face of its image (the one an image-level label names)
    label: str | None = None  # the catalog's label for it, if any


@dataclass(frozen=True)
class ConsistencyReport:
    """How the catalog (source of truth) and the index (derived) agree for the active model."""

    model_id: str
    catalog_faces: int
    index_entries: int
    missing_from_index: int
    orphaned_in_index: int
    repaired: bool

    @property
    def consistent(self) -> bool:
        return self.missing_from_index == 0 and self.orphaned_in_index == 0


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data.mkdir(parents=True, exist_ok=True)
        self.pack: ModelPack = load_pack(settings.pack, data_dir=settings.data)
        self.catalog: SqlCatalog = open_catalog(settings.resolved_catalog_uri)
        self._analyzer: FaceAnalyzer | None = None
        self._index: VectorIndex | None = None
        # Whether the open index has been compared with the catalog (and repaired) since it was opened.
        self._index_reconciled = False
        self.governance_store: SqlGovernanceStore = self.catalog.governance_store()
        self.audit = AuditLog(self.governance_store)
        self.users = UserService(self.governance_store, self.audit)
        # One engine may serve several threads (the HTTP server); the index and the analyzer are opened once.
        self._open_lock = threading.RLock()

    # -- wiring -------------------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.pack.model_id

    def analyzer_factory(self) -> Callable[[], FaceAnalyzer]:
        """A picklable recipe for an analyzer, so each worker process builds its own."""
        return functools.partial(open_analyzer, self.settings.analyzer_options())

    @property
    def analyzer(self) -> FaceAnalyzer:
        if self._analyzer is None:
            with self._open_lock:
                if self._analyzer is None:
                    self._analyzer = self.analyzer_factory()()
        return self._analyzer

    @property
    def index(self) -> VectorIndex:
        """The index, reconciled with the catalog the first time it is used (see docs/decisions/0001)."""
        if not self._index_reconciled:
            with self._open_lock:
                if not self._index_reconciled:
                    report = self.check(repair=True)
                    if not report.consistent:
                        log.warning("index and catalog disagreed; reconciled: %s", report)
        return self._stored_index()

    def _stored_index(self) -> VectorIndex:
        """The index as stored, opened once and not yet reconciled: what check() must look at."""
        if self._index is None:
            self._index = open_index(self.settings.resolved_index_uri, self.model_id, self.pack.embedding_dim)
        return self._index

    def search_service(self) -> SearchService:
        return SearchService(
            self.analyzer,
            self.catalog,
            self.index,
            ScoreCalibrator(self.pack.calibration),
            thumbnails_dir=self.settings.thumbnails_dir,
            suppression=self.suppression(),
        )

    # -- governance wiring --------------------------------------------------------------------------------------

    @property
    def strict_similarity(self) -> float:
        """The similarity at a false-match rate of 1e-6 for this pack: erasure and suppression match at or above
        it, and a probe this close to an earlier one counts as the same person searched again."""
        if self.pack.calibration is None:
            raise ConfigError(f"pack {self.pack.id} has no calibration: erasure by photo needs a strict threshold")
        return ScoreCalibrator(self.pack.calibration).similarity_at(ERASURE_FALSE_MATCH_RATE)

    def suppression(self) -> SuppressionList | None:
        """The erased people's embeddings (None for an uncalibrated pack, which cannot erase by similarity)."""
        if self.pack.calibration is None:
            return None
        return SuppressionList(self.governance_store, self.model_id, self.strict_similarity)

    @property
    def cases(self) -> CaseService:
        repeat = self.strict_similarity if self.pack.calibration is not None else math.inf
        return CaseService(self.governance_store, self.audit, repeat)

    @property
    def erasure(self) -> ErasureService:
        return ErasureService(
            self.catalog,
            self.index,
            self.governance_store,
            self.audit,
            self.settings.thumbnails_dir,
            model_id=self.model_id,
            min_similarity=self.strict_similarity,
            uploads_dir=self.settings.uploads_dir,
        )

    @property
    def retention(self) -> RetentionService:
        return RetentionService(
            self.catalog, self.index, self.audit, self.settings.thumbnails_dir, model_id=self.model_id
        )

    def purge(self, actor: str, *, dry_run: bool = False) -> PurgeSummary:
        """Delete every photo and face whose retention has ended (not suppressed: see governance/retention.py)."""
        return self.retention.purge(actor, dry_run=dry_run)

    # -- governed verbs: every one belongs to a user, most to a case, and each leaves an audit entry -------------

    def search_in_case(
        self,
        user: User,
        case_id: int,
        purpose: str,
        data: bytes,
        probe_name: str,
        *,
        top_k: int | None = None,
        face_index: int | None = None,
        analyzed: AnalyzedImage | None = None,
    ) -> tuple[SearchRecord, list[ProbeResult]]:
        """A search that states its case and purpose, stored with the case (hits, similarities, evidence).

        analyzed is the probe already analysed (analyze_probe), so that a server can run the models outside the lock
        it holds around the index: the analyzer is safe from several threads, the index is not.
        """
        cases = self.cases
        case, purpose = cases.check_search_allowed(case_id, purpose)
        image = analyzed if analyzed is not None else self.analyze_probe(data, probe_name)
        top_k = top_k or self.settings.top_k
        results = self.search_service().search_analyzed(image, top_k=top_k, face_index=face_index)
        probe = image.faces[face_index] if face_index is not None else main_face(image)
        record = cases.record_search(
            user,
            case,
            purpose,
            hashlib.sha256(data).hexdigest(),
            probe_name,
            self.model_id,
            probe.embedding.vector,
            results,
        )
        return record, results

    def analyze_probe(self, data: bytes, probe_name: str) -> AnalyzedImage:
        """Every face in a probe photo (detect, align, embed); touches no index or catalog, safe from any thread."""
        return self.analyzer.analyze(data, probe_name)

    def compare_in_case(
        self, user: User, case_id: int, purpose: str, a: tuple[bytes, str], b: tuple[bytes, str]
    ) -> Comparison:
        case, purpose = self.cases.check_search_allowed(case_id, purpose)
        comparison = self.search_service().compare(a, b)
        self.audit.record(
            user.name,
            "compare",
            f"case:{case.case_id}",
            purpose=purpose,
            sha256_a=hashlib.sha256(a[0]).hexdigest(),
            sha256_b=hashlib.sha256(b[0]).hexdigest(),
            similarity=round(comparison.similarity, 6),
        )
        return comparison

    def view_face(self, user: User, face_id: int) -> FaceRecord:
        record = self.catalog.faces_by_id([face_id]).get(face_id)
        if record is None:
            raise NotFoundError(f"no face {face_id}")
        self.audit.record(user.name, "view_face", f"face:{face_id}")
        return record

    def face_thumbnail(self, user: User, face_id: int) -> bytes:
        record = self.catalog.faces_by_id([face_id]).get(face_id)
        if record is None or not record.thumbnail_path:
            raise NotFoundError(f"face {face_id} has no thumbnail")
        path = self.settings.thumbnails_dir / record.thumbnail_path
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"face {face_id}: its thumbnail file is missing") from exc
        self.audit.record(user.name, "view_thumbnail", f"face:{face_id}")
        return data

    def people(self, user: User, offset: int = 0, limit: int = 100) -> tuple[list[tuple[str, int]], int]:
        """A page of the gallery's labels with their face counts, and the number of labels; audited, since the
        list says who is in the gallery."""
        page, total = self.catalog.labels(self.model_id, offset, limit)
        self.audit.record(user.name, "list_people", "people", offset=offset, limit=limit, returned=len(page))
        return page, total

    def person_faces(self, user: User, label: str) -> list[FaceRecord]:
        """Every face shown with this label, with provenance; one audited view of the person."""
        records = self.catalog.faces_by_id(self.catalog.face_ids_labelled(label))
        if not records:
            raise NotFoundError(f"no face is labelled {label!r}")
        faces = [records[face_id] for face_id in sorted(records)]
        self.audit.record(user.name, "view_person", f"person:{label}", face_ids=[f.face_id for f in faces])
        return faces

    def erase_by_photo(self, actor: str, data: bytes, probe_name: str, reason: str) -> ErasureReceipt:
        """'Remove me': every face of the requester's photo is matched at the strict threshold and erased."""
        image = self.analyzer.analyze(data, probe_name)
        if not image.faces:
            raise NoFaceError(probe_name)
        vectors = np.vstack([face.embedding.vector for face in image.faces]).astype(np.float32)
        return self.erasure.erase_matching(actor, vectors, probe_name, reason)

    # -- verbs --------------------------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[str | Path] = (),
        *,
        manifests: Iterable[str | Path] = (),
        items: Iterable[SourceItem] = (),
        warcs: Iterable[str | Path] = (),
        opt_out: str | Path | None = None,
        progress: Callable[[IngestProgress], None] | None = None,
        description: str | None = None,
        index: VectorIndex | None = None,
        retain_days: int | None = None,
    ) -> IngestSummary:
        """Ingest folders/files/@lists, manifests, SourceItems and WARC web archives, in that order.

        opt_out is a list file of domains and URL prefixes (see facetrace.ingest.opt_out) whose images are skipped
        unread, from every source. The summary's source_counts say what the sources counted on the way: "opted_out"
        and, for WARC files, the warc_* counts of facetrace.ingest.warc (pages read, images handed on, revisits and
        non-image responses skipped, ...).

        index replaces the engine's index for this run: the HTTP server passes one that takes its lock around each
        write, so searches keep running between batches of a background ingest.
        retain_days (else the retention_days setting) applies to every item that does not state its own (a
        manifest's retain_days column): the purge job deletes them that many days after ingest.
        """
        path_list = [Path(p) for p in paths]
        manifest_list = [Path(m) for m in manifests]
        warc_list = [Path(w) for w in warcs]
        counts: Counter[str] = Counter()
        blocked = OptOutList.load(opt_out) if opt_out is not None else None
        # Checked before the run starts: a missing or non-WARC file is a usage error, not an interrupted run.
        archives = [iter_warc(w, max_bytes=MAX_FETCH_BYTES, opt_out=blocked, counts=counts) for w in warc_list]

        def local_items() -> Iterable[SourceItem]:
            yield from iter_paths(path_list)
            for manifest in manifest_list:
                yield from iter_manifest(manifest)
            yield from items

        def sourced_items() -> Iterable[SourceItem]:
            yield from local_items() if blocked is None else skip_opted_out(local_items(), blocked, counts)
            for archive in archives:
                yield from archive  # opted-out images are skipped inside, before their bodies are read

        default_days = retain_days if retain_days is not None else self.settings.retention_days

        def all_items() -> Iterable[SourceItem]:
            for item in sourced_items():
                if item.retain_days is None and default_days is not None:
                    item = dataclasses.replace(item, retain_days=default_days)
                yield item

        runner = IngestRunner(
            self.analyzer_factory(),
            self.catalog,
            index if index is not None else self.index,
            self.settings.thumbnails_dir,
            model_id=self.model_id,
            workers=self.settings.workers,
            batch_size=self.settings.batch_size,
            progress=progress,
            suppression=self.suppression(),
            analysis=self._ray_analysis(),
        )
        what = description or "ingest " + " ".join(str(p) for p in [*path_list, *manifest_list, *warc_list])
        summary = runner.run(all_items(), what)
        clustered = self._cluster_new_faces(summary)
        if clustered is not None:
            counts.update(
                clusters_joined=clustered.faces_assigned,
                clusters_started=len(clustered.clusters_created),
            )
        if counts:
            log.info("left out by the sources: %s", ", ".join(f"{n} {key}" for key, n in sorted(counts.items())))
        counts.update(summary.source_counts)  # what the runner left out: faces of erased people
        return dataclasses.replace(summary, source_counts=dict(sorted(counts.items())))

    def _ray_analysis(self) -> BatchAnalysis | None:
        """Ray actors when ray_address is set (imported only then: Ray is an optional extra), else None: the runner
        uses this process or local worker processes."""
        if not self.settings.ray_address:
            return None
        from facetrace.ingest.ray_runner import RayAnalysis

        return RayAnalysis(
            self.analyzer_factory(),
            self.settings.ray_address,
            model_id=self.model_id,
            cpus_per_actor=self.settings.threads,
        )

    def search_file(
        self,
        probe: str | Path,
        *,
        top_k: int | None = None,
        face_index: int | None = None,
        actor: str | None = None,
        purpose: str | None = None,
    ) -> list[ProbeResult]:
        """Search with a probe file outside any case (the operator's own use); it is still audited."""
        uri = str(probe)
        data = read_uri(uri)
        results = self.search_service().search(data, uri, top_k=top_k or self.settings.top_k, face_index=face_index)
        self._audit_search(actor, purpose, [(data, uri)], results)
        return results

    def search_fused(
        self,
        probes: Sequence[str | Path],
        *,
        top_k: int | None = None,
        actor: str | None = None,
        purpose: str | None = None,
    ) -> ProbeResult:
        loaded = [(read_uri(str(p)), str(p)) for p in probes]
        result = self.search_service().search_fused(loaded, top_k=top_k or self.settings.top_k)
        self._audit_search(actor, purpose, loaded, [result])
        return result

    def compare_files(
        self, a: str | Path, b: str | Path, *, actor: str | None = None, purpose: str | None = None
    ) -> Comparison:
        first, second = (read_uri(str(a)), str(a)), (read_uri(str(b)), str(b))
        comparison = self.search_service().compare(first, second)
        self.audit.record(
            actor or cli_actor(),
            "compare",
            f"probes:{hashlib.sha256(first[0]).hexdigest()[:16]},{hashlib.sha256(second[0]).hexdigest()[:16]}",
            purpose=purpose or "",
            sources=[first[1], second[1]],
            similarity=round(comparison.similarity, 6),
        )
        return comparison

    def _audit_search(
        self,
        actor: str | None,
        purpose: str | None,
        probes: Sequence[tuple[bytes, str]],
        results: Sequence[ProbeResult],
    ) -> None:
        self.audit.record(
            actor or cli_actor(),
            "search",
            "probes:" + ",".join(hashlib.sha256(data).hexdigest() for data, _ in probes),
            purpose=purpose or "",
            case=None,
            sources=[source for _, source in probes],
            hit_face_ids=[hit.face.face_id for result in results for hit in result.hits],
        )

    def clustering_thresholds(self) -> ClusteringThresholds:
        """The default conservative thresholds, as false-match rates of this pack's calibration."""
        if self.pack.calibration is None:
            raise ConfigError(f"pack {self.pack.id} has no calibration: clustering thresholds cannot be derived")
        return thresholds_for(ScoreCalibrator(self.pack.calibration))

    def cluster(
        self,
        paths: Sequence[str | Path] = (),
        *,
        thresholds: ClusteringThresholds | None = None,
        run_id: int | None = None,
    ) -> tuple[list[ClusteredFace], Clustering]:
        """Group faces into identities, conservatively. With paths, every face in those photos (analysed, not
        stored); with run_id, the faces that ingest run stored; otherwise every face in the catalog."""
        chosen = thresholds or self.clustering_thresholds()
        if paths and run_id is not None:
            raise InvalidRequestError("cluster either photos or the faces of an ingest run, not both")
        faces: list[ClusteredFace] = []
        vectors: list[np.ndarray] = []
        if paths:
            for item in iter_paths([Path(p) for p in paths]):
                image = self.analyzer.analyze(item.read(), item.uri)
                largest = max((f.detection.box.area for f in image.faces), default=0.0)
                for face in image.faces:
                    box = face.detection.box
                    faces.append(ClusteredFace(item.uri, None, box, box.area == largest))
                    vectors.append(face.embedding.vector)
        else:
            ids = self.catalog.face_ids(self.model_id) if run_id is None else self._run_face_ids(run_id)
            records = self.catalog.faces_by_id(ids.tolist())
            largest_by_asset: dict[int, float] = {}
            for record in records.values():
                largest_by_asset[record.asset_id] = max(largest_by_asset.get(record.asset_id, 0.0), record.box.area)
            stored_ids, stored = self.catalog.embeddings_by_id(ids.tolist(), self.model_id)
            for face_id, vector in zip(stored_ids.tolist(), stored, strict=True):
                record = records[face_id]
                main = record.box.area == largest_by_asset[record.asset_id]
                faces.append(ClusteredFace(record.asset_uri, face_id, record.box, main, record.label))
                vectors.append(vector)
        matrix = (
            np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, self.pack.embedding_dim), np.float32)
        )
        return faces, cluster(matrix, chosen)

    # -- persisted clusters ---------------------------------------------------------------------------------------

    @property
    def identities(self) -> IdentityClusters:
        """The saved clusters of this model: incremental placement, merges and splits (docs/clustering.md)."""
        return IdentityClusters(
            self.catalog.cluster_store(), self.catalog, self.index, self.model_id, self.clustering_thresholds()
        )

    def save_clusters(self, *, run_id: int | None = None, actor: str | None = None) -> ClusterUpdate:
        """Persist clusters: the first save clusters every face; later ones keep existing clusters (and their ids)
        and place only faces in no cluster yet. With run_id, only that run's faces are placed."""
        store = self.catalog.cluster_store()
        ids = self._run_face_ids(run_id) if run_id is not None else store.unclustered_face_ids(self.model_id)
        who = actor or cli_actor()
        update = self.identities.update(ids.tolist(), who, "cluster --save" + (f" --run {run_id}" if run_id else ""))
        self.audit.record(
            who,
            "cluster_save",
            f"model:{self.model_id}",
            run_id=run_id,
            faces_considered=update.faces_considered,
            faces_assigned=update.faces_assigned,
            clusters_created=len(update.clusters_created),
        )
        return update

    def stored_clusters(self) -> list[StoredCluster]:
        return self.catalog.cluster_store().clusters(self.model_id)

    def stored_cluster(self, cluster_id: int) -> tuple[StoredCluster, list[ClusterEvent]]:
        """One saved cluster and its history."""
        store = self.catalog.cluster_store()
        found = store.cluster(cluster_id)
        if found is None:
            raise NotFoundError(f"no cluster {cluster_id}")
        return found, store.cluster_events(cluster_id)

    def merge_clusters(self, kept: int, absorbed: int, reason: str, *, actor: str | None = None) -> ClusterEvent:
        """A person's merge of two clusters into kept (audited; the rules' evidence is kept whatever it says)."""
        who = actor or cli_actor()
        event = self.identities.merge(kept, absorbed, who, reason)
        self._audit_cluster_event(who, "cluster_merge", event)
        return event

    def split_cluster(
        self, cluster_id: int, face_ids: Sequence[int], reason: str, *, actor: str | None = None
    ) -> ClusterEvent:
        """A person's split: face_ids leave cluster_id for a new cluster (audited)."""
        who = actor or cli_actor()
        event = self.identities.split(cluster_id, face_ids, who, reason)
        self._audit_cluster_event(who, "cluster_split", event)
        return event

    def rename_cluster(
        self, cluster_id: int, name: str | None, reason: str, *, actor: str | None = None
    ) -> ClusterEvent:
        who = actor or cli_actor()
        event = self.identities.rename(cluster_id, name, who, reason)
        self._audit_cluster_event(who, "cluster_rename", event)
        return event

    def _audit_cluster_event(self, actor: str, action: str, event: ClusterEvent) -> None:
        self.audit.record(
            actor,
            action,
            f"cluster:{event.cluster_id}",
            event_id=event.event_id,
            other_cluster_id=event.other_cluster_id,
            face_ids=list(event.face_ids),
            reason=event.reason,
            evidence=event.evidence,
        )

    def _cluster_new_faces(self, summary: IngestSummary) -> ClusterUpdate | None:
        """After an ingest, once clusters are saved: the run's new faces join them or start new ones."""
        if not self.settings.cluster_at_ingest or summary.faces_added == 0 or self.pack.calibration is None:
            return None
        if self.catalog.cluster_store().count_clusters(self.model_id) == 0:
            return None
        ids = self.catalog.face_ids_of_run(summary.run_id, self.model_id)
        try:
            update = self.identities.update(
                ids.tolist(), f"ingest:run {summary.run_id}", f"ingest run {summary.run_id}"
            )
        except (ConflictError, CatalogError) as exc:
            # The faces are stored either way; another process placing them at the same moment (or a catalog
            # hiccup) must not turn a finished ingest into a failure. The next `cluster --save` places what is left.
            log.warning("ingest run %d: new faces not placed in clusters: %s", summary.run_id, exc)
            return None
        log.info(
            "clusters: %d new faces joined saved clusters, %d started new ones (%.2f s)",
            update.faces_assigned,
            len(update.clusters_created),
            update.seconds,
        )
        return update

    def _run_face_ids(self, run_id: int) -> IdArray:
        if run_id not in {run.run_id for run in self.catalog.runs()}:
            raise NotFoundError(f"no ingest run {run_id}")
        return self.catalog.face_ids_of_run(run_id, self.model_id)

    def rebuild_index(self) -> int:
        """Recreate the index from the catalog's stored embeddings (the index is derived data)."""
        # The expected size picks the index structure up front (exact, or IVF with re-ranking past 200k faces)
        # instead of filling an exact index and converting it, which would double the peak memory.
        index = open_index(
            self.settings.resolved_index_uri,
            self.model_id,
            self.pack.embedding_dim,
            fresh=True,
            expected_count=self.catalog.count_faces(self.model_id),
        )
        for ids, vectors in self.catalog.iter_embeddings(self.model_id):
            index.add(ids, vectors)
        index.save()
        self._index = index
        self._index_reconciled = True
        return len(index)

    def check(self, *, repair: bool = False) -> ConsistencyReport:
        """Compare catalog face ids with index ids; with repair, add what the index lacks and drop orphans.

        Without repair nothing is changed, so the report shows the index as it was stored (the index property
        repairs on first use; going through it here would always report agreement).
        """
        index = self._stored_index()
        catalog_ids = self.catalog.face_ids(self.model_id)
        index_ids = index.ids()
        missing = np.setdiff1d(catalog_ids, index_ids, assume_unique=True)
        orphaned = np.setdiff1d(index_ids, catalog_ids, assume_unique=True)
        if repair and (missing.size or orphaned.size):
            if orphaned.size:
                index.remove(orphaned)
            if missing.size:
                ids, vectors = self.catalog.embeddings_by_id(missing.tolist())
                index.add(ids, vectors)
            index.save()
        if repair or not (missing.size or orphaned.size):
            self._index_reconciled = True
        return ConsistencyReport(
            model_id=self.model_id,
            catalog_faces=int(catalog_ids.size),
            index_entries=int(index_ids.size),
            missing_from_index=int(missing.size),
            orphaned_in_index=int(orphaned.size),
            repaired=repair and bool(missing.size or orphaned.size),
        )

    def stats(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.settings.data),
            "model_pack": self.pack.id,
            "model_id": self.model_id,
            "catalog": self.catalog.stats(),
            "index_entries": len(self.index),
        }

    def close(self) -> None:
        if self._index is not None:
            self._index.settle()  # a structure switch still being built is finished and saved, not lost
            self._index.save()
        self.catalog.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_engine(data: str | Path | None = None, **overrides: Any) -> Engine:
    """An engine over one data directory (default: FACETRACE_DATA or the user's data dir); overrides are Settings
    fields, e.g. workers=1, catalog_uri="postgresql://…"."""
    if data is not None:
        overrides["data"] = Path(data).expanduser().resolve()
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from exc
    return Engine(settings)


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


def cli_actor() -> str:
    """Who an audit entry names for a command run on the host (trusted as the operator of the data directory)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
