"""engine.search: 1:N search, fusion and 1:1 comparison, on the operator's own (audited) or within a case.

Photos are analysed before any lock is taken; the search service takes the engine's lock (shared) for the index and
catalog reads alone. The probe work (analysis and index query) runs on the engine's probe pool (engine/probe_pool.py),
which spreads concurrent requests over the cores; checking the case and storing the search stay on the caller's
thread. top_k is 1..MAX_TOP_K (None: the top_k setting); a face is chosen by its 0-based number in detector order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from facetrace.core.errors import (
    FaceSelectionError,
    FacetraceError,
    ImageDecodeError,
    InvalidRequestError,
    NoFaceError,
    error_code,
)
from facetrace.core.ports import FaceAnalyzer
from facetrace.core.types import AnalyzedImage, ProbeOutcome, ProbeResult, SearchRecord, User
from facetrace.core.vocabulary import AuditAction
from facetrace.engine.actors import cli_actor
from facetrace.engine.probe_pool import ProbePool
from facetrace.governance.audit import AuditLog
from facetrace.governance.cases import CaseService
from facetrace.ingest.sources import read_uri
from facetrace.search.service import Comparison, SearchService, check_top_k, main_face

# What makes one probe photo of several fail on its own (the others are still searched); each outcome carries the
# error's code (core/errors.py). Anything else (the catalog or the index unusable) fails the whole search.
PROBE_ERRORS: tuple[type[FacetraceError], ...] = (ImageDecodeError, NoFaceError, FaceSelectionError)


class Searches:
    def __init__(
        self,
        analyzer: Callable[[], FaceAnalyzer],
        service: Callable[[], SearchService],
        cases: CaseService,
        audit: AuditLog,
        pool: ProbePool,
        *,
        model_id: str,
        top_k: int,
    ) -> None:
        self._analyzer = analyzer
        self._pool = pool
        self._service = service
        self._cases = cases
        self._audit = audit
        self._model_id = model_id
        self._top_k = top_k

    def _top_k_or_default(self, top_k: int | None) -> int:
        """top_k, checked (1..MAX_TOP_K), or the top_k setting when None: 0 is an error, not the default."""
        return check_top_k(self._top_k if top_k is None else top_k)

    def analyze(self, data: bytes, probe_name: str) -> AnalyzedImage:
        """Every face in a probe photo (detect, align, embed); touches no index or catalog, safe from any thread."""
        return self._pool.run(lambda: self._analyzer().analyze(data, probe_name))

    # -- the operator's own searches (still audited) ------------------------------------------------------------------

    def file(
        self,
        probe: str | Path,
        *,
        top_k: int | None = None,
        face_index: int | None = None,
        actor: str | None = None,
        purpose: str | None = None,
    ) -> list[ProbeResult]:
        """Search with a probe file outside any case; every face in it, or face number face_index."""
        top_k = self._top_k_or_default(top_k)
        uri = str(probe)
        data = read_uri(uri)
        try:
            results = self._pool.run(lambda: self._service().search(data, uri, top_k=top_k, face_index=face_index))
        except PROBE_ERRORS as exc:
            self._audit_failure(actor or cli_actor(), f"probes:{hashlib.sha256(data).hexdigest()}", purpose or "", exc)
            raise
        self._audit_search(actor, purpose, [(data, uri)], results)
        return results

    def files(
        self,
        probes: Sequence[str | Path],
        *,
        top_k: int | None = None,
        faces: Sequence[int | None] | None = None,
        actor: str | None = None,
        purpose: str | None = None,
    ) -> list[ProbeOutcome]:
        """Search with each probe file in turn, every face or face number faces[i]: each probe gets its own outcome.
        A probe that cannot be read, holds no face or lacks the face asked for is reported and the rest go on."""
        top_k = self._top_k_or_default(top_k)
        choices = list(faces) if faces is not None else [None] * len(probes)
        if len(choices) != len(probes):
            raise InvalidRequestError(f"{len(choices)} face choices for {len(probes)} probe photos")
        outcomes: list[ProbeOutcome] = []
        for probe, choice in zip(probes, choices, strict=True):
            try:
                results = self.file(probe, top_k=top_k, face_index=choice, actor=actor, purpose=purpose)
            except PROBE_ERRORS as exc:
                outcomes.append(ProbeOutcome(str(probe), error_code=error_code(exc), error_message=str(exc)))
            else:
                outcomes.append(ProbeOutcome(str(probe), results=tuple(results)))
        return outcomes

    def fused(
        self,
        probes: Sequence[str | Path],
        *,
        top_k: int | None = None,
        faces: Sequence[int | None] | None = None,
        allow_mixed: bool = False,
        actor: str | None = None,
        purpose: str | None = None,
    ) -> ProbeResult:
        """Several photos of one person as one template: face number faces[i] of each (None: its main face). Photos
        that do not show one person are refused (MixedProbesError names the odd ones) unless allow_mixed."""
        top_k = self._top_k_or_default(top_k)
        loaded = [(read_uri(str(p)), str(p)) for p in probes]
        result = self._pool.run(
            lambda: self._service().search_fused(loaded, top_k=top_k, faces=faces, allow_mixed=allow_mixed)
        )
        self._audit_search(actor, purpose, loaded, [result])
        return result

    def compare_files(
        self,
        a: str | Path,
        b: str | Path,
        *,
        face_a: int | None = None,
        face_b: int | None = None,
        actor: str | None = None,
        purpose: str | None = None,
    ) -> Comparison:
        """1:1: face number face_a of photo a against face_b of b (None: the main face of each)."""
        first, second = (read_uri(str(a)), str(a)), (read_uri(str(b)), str(b))
        comparison = self._pool.run(lambda: self._service().compare(first, second, face_a=face_a, face_b=face_b))
        self._audit.record(
            actor or cli_actor(),
            AuditAction.COMPARE,
            f"probes:{hashlib.sha256(first[0]).hexdigest()[:16]},{hashlib.sha256(second[0]).hexdigest()[:16]}",
            purpose=purpose or "",
            sources=[first[1], second[1]],
            similarity=round(comparison.similarity, 6),
        )
        return comparison

    # -- governed: every one belongs to a user and a case, and is stored with it ---------------------------------------

    def analyze_in_case(self, user: User, case_id: int, purpose: str, data: bytes, probe_name: str) -> AnalyzedImage:
        """A probe analysed for a search in this case before its faces are picked (the web UI's probe overview): the
        case and purpose are checked first, and a probe that cannot be read is audited as search_failed, as in_case
        audits one without the face asked for."""
        case, purpose = self._cases.check_search_allowed(user, case_id, purpose)
        try:
            return self.analyze(data, probe_name)
        except PROBE_ERRORS as exc:
            self._audit_failure(user.name, f"case:{case.case_id}", purpose, exc, case_id=case.case_id)
            raise

    def in_case(
        self,
        user: User,
        case_id: int,
        purpose: str,
        data: bytes,
        probe_name: str,
        *,
        top_k: int | None = None,
        faces: Sequence[int] | None = None,
        analyzed: AnalyzedImage | None = None,
    ) -> tuple[SearchRecord, list[ProbeResult]]:
        """A search that states its case and purpose, stored with the case (hits, similarities, evidence): of the
        probe's faces numbered in faces (0-based, detector order), or of every face when None. Only the faces
        searched are stored and audited.

        analyzed is the probe already analysed (analyze()), e.g. to show its faces before searching one of them.
        """
        top_k = self._top_k_or_default(top_k)
        case, purpose = self._cases.check_search_allowed(user, case_id, purpose)
        sha256 = hashlib.sha256(data).hexdigest()

        def probe_work() -> tuple[AnalyzedImage, list[ProbeResult]]:
            image = analyzed if analyzed is not None else self.analyze(data, probe_name)  # in place, on the pool
            service = self._service()
            return image, service.search_analyzed(image, top_k=top_k, faces=faces, probe_sha256=sha256)

        try:
            image, results = self._pool.run(probe_work)
        except PROBE_ERRORS as exc:
            self._audit_failure(user.name, f"case:{case.case_id}", purpose, exc, case_id=case.case_id)
            raise
        probe = image.faces[faces[0]] if faces else main_face(image)
        record = self._cases.record_search(
            user,
            case,
            purpose,
            sha256,
            probe_name,
            self._model_id,
            probe.embedding.vector,
            results,
        )
        return record, results

    def compare_in_case(
        self,
        user: User,
        case_id: int,
        purpose: str,
        a: tuple[bytes, str],
        b: tuple[bytes, str],
        *,
        face_a: int | None = None,
        face_b: int | None = None,
    ) -> Comparison:
        case, purpose = self._cases.check_search_allowed(user, case_id, purpose)
        comparison = self._pool.run(lambda: self._service().compare(a, b, face_a=face_a, face_b=face_b))
        self._audit.record(
            user.name,
            AuditAction.COMPARE,
            f"case:{case.case_id}",
            purpose=purpose,
            sha256_a=hashlib.sha256(a[0]).hexdigest(),
            sha256_b=hashlib.sha256(b[0]).hexdigest(),
            similarity=round(comparison.similarity, 6),
        )
        return comparison

    def _audit_failure(self, actor: str, target: str, purpose: str, exc: FacetraceError, **details: object) -> None:
        """A search that could not be made: counted in the transparency report beside those that were."""
        self._audit.record(actor, AuditAction.SEARCH_FAILED, target, purpose=purpose, error=error_code(exc), **details)

    def _audit_search(
        self,
        actor: str | None,
        purpose: str | None,
        probes: Sequence[tuple[bytes, str]],
        results: Sequence[ProbeResult],
    ) -> None:
        mixed = [source for result in results if result.fusion is not None for source in result.fusion.odd_sources]
        self._audit.record(
            actor or cli_actor(),
            AuditAction.SEARCH,
            "probes:" + ",".join(hashlib.sha256(data).hexdigest() for data, _ in probes),
            purpose=purpose or "",
            case=None,
            sources=[source for _, source in probes],
            hit_face_ids=[hit.face.face_id for result in results for hit in result.hits],
            # A fusion allowed although its photos did not show one person: which photos were odd.
            **({"fused_mixed_sources": mixed} if mixed else {}),
        )
