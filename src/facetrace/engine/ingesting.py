"""engine.ingest: folders, files, @lists, manifests, SourceItems and WARC web archives into the gallery."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from facetrace.config import Settings
from facetrace.core.ports import Catalog, DataGuard, FaceAnalyzer, SuppressionCheck, VectorIndex
from facetrace.core.types import IngestSummary
from facetrace.engine.clustering import Clusters
from facetrace.ingest.opt_out import OptOutList, skip_opted_out
from facetrace.ingest.runner import BatchAnalysis, IngestProgress, IngestRunner
from facetrace.ingest.sources import MAX_FETCH_BYTES, SourceItem, iter_manifest, iter_paths
from facetrace.ingest.warc import iter_warc

log = logging.getLogger(__name__)


class Ingestion:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        index: VectorIndex,
        guard: DataGuard,
        clusters: Callable[[], Clusters],
        *,
        analyzer_factory: Callable[[], Callable[[], FaceAnalyzer]],
        suppression: SuppressionCheck | None,
        model_id: str,
        clusters_at_ingest: bool,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._index = index
        self._guard = guard
        self._clusters = clusters
        self._analyzer_factory = analyzer_factory
        self._suppression = suppression
        self._model_id = model_id
        self._clusters_at_ingest = clusters_at_ingest

    def run(
        self,
        paths: Iterable[str | Path] = (),
        *,
        manifests: Iterable[str | Path] = (),
        items: Iterable[SourceItem] = (),
        warcs: Iterable[str | Path] = (),
        opt_out: str | Path | None = None,
        progress: Callable[[IngestProgress], None] | None = None,
        description: str | None = None,
        retain_days: int | None = None,
    ) -> IngestSummary:
        """Ingest folders/files/@lists, manifests, SourceItems and WARC web archives, in that order.

        opt_out is a list file of domains and URL prefixes (see facetrace.ingest.opt_out) whose images are skipped
        unread, from every source. The summary's source_counts say what the sources counted on the way: "opted_out"
        and, for WARC files, the warc_* counts of facetrace.ingest.warc (pages read, images handed on, revisits and
        non-image responses skipped, ...).

        The run holds the data directory's writer lock (another writing process waits, saying so); each batch is
        stored under the engine's lock, so searches in this process continue between batches and see each batch.
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
            yield from iter_paths(path_list, counts)
            for manifest in manifest_list:
                yield from iter_manifest(manifest)
            yield from items

        def sourced_items() -> Iterable[SourceItem]:
            yield from local_items() if blocked is None else skip_opted_out(local_items(), blocked, counts)
            for archive in archives:
                yield from archive  # opted-out images are skipped inside, before their bodies are read

        default_days = retain_days if retain_days is not None else self._settings.retention_days

        def all_items() -> Iterable[SourceItem]:
            for item in sourced_items():
                if item.retain_days is None and default_days is not None:
                    item = dataclasses.replace(item, retain_days=default_days)
                yield item

        runner = IngestRunner(
            self._analyzer_factory(),
            self._catalog,
            self._index,
            self._settings.thumbnails_dir,
            model_id=self._model_id,
            workers=self._settings.workers,
            batch_size=self._settings.batch_size,
            progress=progress,
            suppression=self._suppression,
            analysis=self._ray_analysis(),
            guard=self._guard,
        )
        what = description or "ingest " + " ".join(str(p) for p in [*path_list, *manifest_list, *warc_list])
        summary = runner.run(all_items(), what)
        clustered = None
        if self._clusters_at_ingest and summary.faces_added:
            clustered = self._clusters().place_new_faces(summary.run_id)
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
        if not self._settings.ray_address:
            return None
        from facetrace.ingest.ray_runner import RayAnalysis

        return RayAnalysis(
            self._analyzer_factory(),
            self._settings.ray_address,
            model_id=self._model_id,
            cpus_per_actor=self._settings.threads,
        )
