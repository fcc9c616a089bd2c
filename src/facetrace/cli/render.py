"""Turning results into JSON-ready data and human-readable text. Formatting lives here, nowhere else."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.core.evidence import describe
from facetrace.core.types import Evidence, ProbeResult
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


def probe_result_json(result: ProbeResult) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(result)
    for hit in out["hits"]:
        # The embedding is not evidence a reader needs, and landmarks are kept for the crops' geometry.
        hit["face"].pop("landmarks", None)
    return out


def evidence_json(evidence: Evidence) -> dict[str, Any]:
    """The evidence's fields (strength as its value, rates unrounded) and the sentence rendered from them."""
    fields = {f.name: jsonable(getattr(evidence, f.name)) for f in dataclasses.fields(evidence)}
    return fields | {
        "calibrated": evidence.calibrated,
        "pair_condition": evidence.pair_condition,
        "verdict": describe(evidence),
    }


def format_probe_result(result: ProbeResult) -> str:
    if result.probe_face_index is None:
        head = f"Fused template of {result.probe_source}"
    else:
        box = result.probe_box
        where = f" at ({box.x1:.0f},{box.y1:.0f})-({box.x2:.0f},{box.y2:.0f})" if box else ""
        head = f"{result.probe_source}, face {result.probe_face_index}{where}"
    lines = [head]
    if result.probe_quality is not None:
        q = result.probe_quality
        flags = f" — WEAK PROBE: {', '.join(q.flags)}" if q.flags else ""
        lines.append(f"  probe quality {q.score:.2f}{flags}")
    if not result.hits:
        lines.append("  no candidates (empty gallery)")
    for hit in result.hits:
        f = hit.face
        label = f.shown_as or "(unlabelled)"
        lines.append(f"  #{hit.rank}  similarity {hit.similarity:.3f}  {label}  face {f.face_id}  {f.asset_uri}")
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
            f"{c.source_a}  vs  {c.source_b}",
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
