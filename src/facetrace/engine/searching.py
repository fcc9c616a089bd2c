"""engine.search: 1:N search, fusion and 1:1 comparison, on the operator's own (audited) or within a case.

Photos are analysed before any lock is taken; the search service takes the engine's lock (shared) for the index and
catalog reads alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from facetrace.core.ports import FaceAnalyzer
from facetrace.core.types import AnalyzedImage, ProbeResult, SearchRecord, User
from facetrace.core.vocabulary import AuditAction
from facetrace.engine.actors import cli_actor
from facetrace.governance.audit import AuditLog
from facetrace.governance.cases import CaseService
from facetrace.ingest.sources import read_uri
from facetrace.search.service import Comparison, SearchService, main_face


class Searches:
    def __init__(
        self,
        analyzer: Callable[[], FaceAnalyzer],
        service: Callable[[], SearchService],
        cases: CaseService,
        audit: AuditLog,
        *,
        model_id: str,
        top_k: int,
    ) -> None:
        self._analyzer = analyzer
        self._service = service
        self._cases = cases
        self._audit = audit
        self._model_id = model_id
        self._top_k = top_k

    def analyze(self, data: bytes, probe_name: str) -> AnalyzedImage:
        """Every face in a probe photo (detect, align, embed); touches no index or catalog, safe from any thread."""
        return self._analyzer().analyze(data, probe_name)

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
        uri = str(probe)
        data = read_uri(uri)
        results = self._service().search(data, uri, top_k=top_k or self._top_k, face_index=face_index)
        self._audit_search(actor, purpose, [(data, uri)], results)
        return results

    def fused(
        self,
        probes: Sequence[str | Path],
        *,
        top_k: int | None = None,
        actor: str | None = None,
        purpose: str | None = None,
    ) -> ProbeResult:
        """Several photos of one person as one template."""
        loaded = [(read_uri(str(p)), str(p)) for p in probes]
        result = self._service().search_fused(loaded, top_k=top_k or self._top_k)
        self._audit_search(actor, purpose, loaded, [result])
        return result

    def compare_files(
        self, a: str | Path, b: str | Path, *, actor: str | None = None, purpose: str | None = None
    ) -> Comparison:
        """1:1: the main face of each photo."""
        first, second = (read_uri(str(a)), str(a)), (read_uri(str(b)), str(b))
        comparison = self._service().compare(first, second)
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

    def in_case(
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

        analyzed is the probe already analysed (analyze()), e.g. to show its faces before searching one of them.
        """
        case, purpose = self._cases.check_search_allowed(case_id, purpose)
        image = analyzed if analyzed is not None else self.analyze(data, probe_name)
        results = self._service().search_analyzed(image, top_k=top_k or self._top_k, face_index=face_index)
        probe = image.faces[face_index] if face_index is not None else main_face(image)
        record = self._cases.record_search(
            user,
            case,
            purpose,
            hashlib.sha256(data).hexdigest(),
            probe_name,
            self._model_id,
            probe.embedding.vector,
            results,
        )
        return record, results

    def compare_in_case(
        self, user: User, case_id: int, purpose: str, a: tuple[bytes, str], b: tuple[bytes, str]
    ) -> Comparison:
        case, purpose = self._cases.check_search_allowed(case_id, purpose)
        comparison = self._service().compare(a, b)
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

    def _audit_search(
        self,
        actor: str | None,
        purpose: str | None,
        probes: Sequence[tuple[bytes, str]],
        results: Sequence[ProbeResult],
    ) -> None:
        self._audit.record(
            actor or cli_actor(),
            AuditAction.SEARCH,
            "probes:" + ",".join(hashlib.sha256(data).hexdigest() for data, _ in probes),
            purpose=purpose or "",
            case=None,
            sources=[source for _, source in probes],
            hit_face_ids=[hit.face.face_id for result in results for hit in result.hits],
        )
