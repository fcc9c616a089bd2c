"""Turning results into JSON-ready data and human-readable text. Formatting lives here, nowhere else."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.core.evidence import describe, detail
from facetrace.core.types import Evidence, ProbeOutcome, ProbeResult
from facetrace.core.vocabulary import MinStrength, SameImage, WithheldReason
from facetrace.search.service import Comparison


def jsonable(value: Any) -> Any:
    """Plain JSON types from dataclasses, numpy values, datetimes and paths (NaN becomes null). Floats keep their
    full precision: a false-match rate of 2.6e-7 must not print as 0.0."""
    if isinstance(value, Evidence):
        return evidence_json(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "thumbnail_jpeg"
        }
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


@dataclass(frozen=True, eq=False)
class TrimmedResult(ProbeResult):
    """A probe face's result with the hits below a --min-strength filter left out, and how many they were."""

    below_min_strength: int = 0


def trim_outcome(outcome: ProbeOutcome, min_strength: MinStrength) -> ProbeOutcome:
    """The outcome with each result's hits below min_strength left out (counted in below_min_strength)."""
    if min_strength is MinStrength.WEAK:
        return outcome
    results = []
    for result in outcome.results:
        kept = tuple(hit for hit in result.hits if min_strength.keeps(hit.evidence.strength))
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
        results.append(TrimmedResult(**(fields | {"hits": kept, "below_min_strength": len(result.hits) - len(kept)})))
    return dataclasses.replace(outcome, results=tuple(results))


def probe_result_json(result: ProbeResult) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(result)
    if result.fusion is not None:
        out["fusion"]["one_person"] = result.fusion.one_person
    for hit in out["hits"]:
        # The embedding is not evidence a reader needs, and landmarks are kept for the crops' geometry.
        hit["face"].pop("landmarks", None)
    return out


def search_outcomes_json(outcomes: list[ProbeOutcome]) -> dict[str, Any]:
    """A search's JSON: every probe face's result, and each probe photo that could not be searched and why."""
    return {
        "results": [probe_result_json(r) for o in outcomes for r in o.results],
        "errors": [
            {"probe_source": o.probe_source, "code": o.error_code, "message": o.error_message}
            for o in outcomes
            if o.failed
        ],
    }


def evidence_json(evidence: Evidence) -> dict[str, Any]:
    """The evidence's fields (strength as its value, rates unrounded) and the sentence rendered from them."""
    fields = {f.name: jsonable(getattr(evidence, f.name)) for f in dataclasses.fields(evidence)}
    return fields | {
        "calibrated": evidence.calibrated,
        "pair_condition": evidence.pair_condition,
        "verdict": describe(evidence),
        "detail": detail(evidence),
    }


_SAME_IMAGE_TEXT = {
    SameImage.IDENTICAL: "SAME IMAGE as the probe (same file): not independent evidence",
    SameImage.NEAR_DUPLICATE: "LIKELY THE SAME PHOTO as the probe (a copy): not independent evidence",
}
_WITHHELD_TEXT = {
    WithheldReason.ERASED_PERSON: "of an erased person",
    WithheldReason.NO_CATALOG_ROW: "without a catalog row (run `facetrace check --repair`)",
    WithheldReason.IMPOSSIBLE_SIMILARITY: "with an impossible similarity (damaged: run `facetrace check --repair`)",
}


def format_withheld(withheld: dict[WithheldReason, int]) -> str:
    """'3 of an erased person, 1 without a catalog row (...)'."""
    return ", ".join(f"{n} {_WITHHELD_TEXT.get(reason, str(reason))}" for reason, n in withheld.items())


def format_probe_result(result: ProbeResult) -> str:
    if result.probe_face_index is None:
        faces = (
            " (faces " + ", ".join(str(n) for n in result.fused_face_indexes) + ")" if result.fused_face_indexes else ""
        )
        head = f"Fused template of {result.probe_source}{faces}"
    else:
        box = result.probe_box
        where = f" at ({box.x1:.0f},{box.y1:.0f})-({box.x2:.0f},{box.y2:.0f})" if box else ""
        head = f"{result.probe_source}, face {result.probe_face_index}{where}"
    lines = [head]
    if result.probe_quality is not None:
        q = result.probe_quality
        flags = f" — WEAK PROBE: {', '.join(q.flags)}" if q.flags else ""
        lines.append(f"  probe quality {q.score:.2f}{flags}")
    if result.fusion is not None and not result.fusion.one_person:
        lines.append(
            f"  MIXED PHOTOS, fused as allowed: {', '.join(result.fusion.odd_sources)} did not match the others at "
            f"{result.fusion.threshold:.3f}"
        )
    withheld = dict(result.withheld)
    if withheld:
        total = sum(withheld.values())
        lines.append(f"  {total} candidate(s) withheld, the next ones shown instead: {format_withheld(withheld)}")
    below = result.below_min_strength if isinstance(result, TrimmedResult) else 0
    if below:
        lines.append(f"  {below} weaker candidate(s) not shown (--min-strength)")
    if not result.hits and not below:
        empty = "every face in the gallery was withheld" if withheld else "empty gallery"
        lines.append(f"  no candidates ({empty})")
    for hit in result.hits:
        f = hit.face
        label = f.shown_as or "(unlabelled)"
        lines.append(f"  #{hit.rank}  similarity {hit.similarity:.3f}  {label}  face {f.face_id}  {f.asset_uri}")
        if hit.same_image is not SameImage.NONE:
            lines.append(f"        {_SAME_IMAGE_TEXT[hit.same_image]}")
        lines.append(f"        {describe(hit.evidence)}")
        extras = [
            f"page {f.source_page}" if f.source_page else "",
            f"captured {f.captured_at:%Y-%m-%d}" if f.captured_at else "",
            f"thumbnail {f.thumbnail_path}" if f.thumbnail_path else "",
        ]
        if any(extras):
            lines.append("        " + "  ".join(e for e in extras if e))
    return "\n".join(lines)


def format_comparison(c: Comparison) -> str:
    return "\n".join(
        [
            f"{c.source_a} (face {c.face_index_a})  vs  {c.source_b} (face {c.face_index_b})",
            f"  similarity {c.similarity:.3f}",
            f"  {describe(c.evidence)}",
            f"  quality {c.quality_a.score:.2f} / {c.quality_b.score:.2f}"
            + (
                f"  (weak: {', '.join(c.quality_a.flags + c.quality_b.flags)})"
                if c.quality_a.flags or c.quality_b.flags
                else ""
            ),
        ]
    )
