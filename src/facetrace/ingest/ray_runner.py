"""Ingest across machines: the analysis step of IngestRunner run by Ray actors (`facetrace ingest --ray ADDRESS`).

Only the models move. The driver (the process running the ingest) still reads every source, hashes it, skips content
the catalog already holds and writes every result (thumbnails, then the catalog in one transaction, then the index)
through IngestRunner, exactly as a single-process run does; so resumability and crash safety are unchanged
(docs/decisions/0001). The actors receive batches of (bytes, uri) and return AnalyzedImage results: a node needs
facetrace and the model pack, never access to the photos, the catalog or the index.

This is the only module that imports Ray, and only when a Ray ingest starts: the base install works without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterable
from itertools import chain
from types import ModuleType
from typing import Any

from facetrace.core.errors import ConfigError, FacetraceError, ModelMismatchError
from facetrace.core.ports import FaceAnalyzer
from facetrace.ingest.runner import (
    IN_FLIGHT_PER_WORKER,
    AnalyzerFactory,
    BatchResults,
    ImageBatch,
    Tag,
)

log = logging.getLogger(__name__)

LOCAL_ADDRESS = "local"  # start a Ray instance on this machine with all its cores (stopped when the ingest ends)
MISSING_RAY = "Ray is not installed; distributed ingest needs the ray extra: pip install 'facetrace[ray]'"


def import_ray() -> ModuleType:
    """The ray package, or a ConfigError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(MISSING_RAY) from exc
    return ray


class AnalyzerActor:
    """Holds one analyzer for the life of the ingest (models load once per actor, not once per batch)."""

    def __init__(self, factory: AnalyzerFactory) -> None:
        self._analyzer: FaceAnalyzer = factory()

    def model_id(self) -> str:
        return self._analyzer.model_id

    def analyze_batch(self, items: ImageBatch) -> BatchResults:
        return self._analyzer.analyze_batch(items)


class RayAnalysis:
    """Batches analysed by Ray actors, one analyzer each, with a bounded number of batches in flight.

    address: "local" starts a Ray instance here with the machine's cores; "auto" joins the cluster this machine
    belongs to; "host:port" joins a cluster's head (GCS address); "ray://host:port" connects through Ray Client. If
    this process is already connected to Ray, that connection is used whatever the address says.

    Back-pressure: at most in_flight_per_actor batches per actor are submitted and not yet stored; the next batch is
    read from the sources only when one comes back (ray.wait), so the driver's memory is bounded by
    actors * in_flight_per_actor * batch_size images whatever the source's size.
    """

    def __init__(
        self,
        factory: AnalyzerFactory,
        address: str,
        *,
        model_id: str,
        cpus_per_actor: int = 1,
        actors: int | None = None,
        in_flight_per_actor: int = IN_FLIGHT_PER_WORKER,
    ) -> None:
        self._factory = factory
        self._address = address
        self._model_id = model_id
        self._cpus_per_actor = max(1, cpus_per_actor)
        self._actors = actors
        self._in_flight_per_actor = max(1, in_flight_per_actor)
        self._ray = import_ray()  # fails before the run starts when the extra is missing

    def map(self, batches: Iterable[tuple[Tag, ImageBatch]]) -> Generator[tuple[Tag, BatchResults]]:
        remaining = iter(batches)
        first = next(remaining, None)
        if first is None:
            return  # nothing new to analyse (a re-run): no need to start Ray and load models
        ray = self._ray
        started_here = self._connect(ray)
        actors: list[Any] = []
        try:
            actors = self._start_actors(ray)
            yield from self._dispatch(ray, actors, chain([first], remaining))
        except ray.exceptions.RayError as exc:
            # An actor or node died, or a node lacks the pack: the run stops as "interrupted"; a re-run resumes.
            raise FacetraceError(f"Ray ingest failed: {exc}") from exc
        finally:
            for actor in actors:
                ray.kill(actor)
            if started_here:
                ray.shutdown()

    def _connect(self, ray: ModuleType) -> bool:
        """Connect to Ray as the address says; True if this call started (and so must stop) the connection."""
        if ray.is_initialized():
            return False
        if self._address == LOCAL_ADDRESS:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        else:
            try:
                ray.init(address=self._address)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"cannot reach the Ray cluster at {self._address!r}: {exc}") from exc
        return True

    def _start_actors(self, ray: ModuleType) -> list[Any]:
        count = self._actors or self._free_actor_slots(ray)
        remote_actor = ray.remote(num_cpus=self._cpus_per_actor)(AnalyzerActor)
        actors = [remote_actor.remote(self._factory) for _ in range(count)]
        # Every actor must run the model the catalog and index hold: a node with another pack would mix models.
        for found in ray.get([actor.model_id.remote() for actor in actors]):
            if found != self._model_id:
                raise ModelMismatchError(self._model_id, found, "a Ray worker's model pack")
        log.info("Ray ingest: %d actors of %d CPU(s) each", count, self._cpus_per_actor)
        return actors

    def _free_actor_slots(self, ray: ModuleType) -> int:
        """As many actors as the cluster's free CPUs hold: more would wait for CPUs, with their batches queued."""
        free = float(ray.available_resources().get("CPU", 0.0))
        return max(1, int(free // self._cpus_per_actor))

    def _dispatch(
        self, ray: ModuleType, actors: list[Any], batches: Iterable[tuple[Tag, ImageBatch]]
    ) -> Generator[tuple[Tag, BatchResults]]:
        load = [0] * len(actors)  # batches in flight per actor: the least loaded gets the next one
        pending: dict[Any, tuple[Tag, int]] = {}
        limit = len(actors) * self._in_flight_per_actor
        for tag, batch in batches:
            chosen = min(range(len(actors)), key=load.__getitem__)
            pending[actors[chosen].analyze_batch.remote(list(batch))] = (tag, chosen)
            load[chosen] += 1
            while len(pending) >= limit:
                yield self._next_done(ray, pending, load)
        while pending:
            yield self._next_done(ray, pending, load)

    @staticmethod
    def _next_done(ray: ModuleType, pending: dict[Any, tuple[Tag, int]], load: list[int]) -> tuple[Tag, BatchResults]:
        """Wait for whichever batch finishes first (any actor), not the oldest: a slow batch does not stall the rest."""
        [ref], _ = ray.wait(list(pending), num_returns=1)
        tag, actor = pending.pop(ref)
        load[actor] -= 1
        results: BatchResults = ray.get(ref)
        return tag, results
