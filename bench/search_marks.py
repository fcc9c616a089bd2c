"""The thresholds behind fusion's one-person check and the "likely the same photo" mark, measured on LFW.

    python bench/search_marks.py [--pairs 600] [--people 100] [--copies 150] [--lfw DIR] [--json]

docs/service.md ("Searches") has the figures of `--pairs 1500 --people 300 --copies 200`.

With the default pack and analyzer settings it measures, on LFW deep-funneled (the subject face of each photo):

- genuine pairs: the first --pairs same-person pairs of pairs_resolved.csv, plus every other same-person pair among
  the photos they name. Reported: the share that reaches the fusion threshold (the similarity at each candidate
  false-match rate of the pack's calibration), the highest embedding similarities and the highest thumbnail
  correlations (vision/signatures.py) of different photos of one person, and how many of them the "likely the same
  photo" rule marks (it must mark none but LFW's own duplicates of one photo: look at the top pairs it lists);
- fusion triples: three photos each of --people people with three or more photos, and the same triples with the
  third photo swapped for another person's: the share the fusion rule accepts, and for the mixed ones, how often the
  stranger is the photo it names;
- near-duplicate copies of --copies photos (JPEG quality 60 at 90% size; a 5% crop from every side; JPEG quality 40
  at 75% size): the lowest embedding similarity and thumbnail correlation of a copy to its original, and how many
  copies the rule marks.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facetrace.config import Settings
from facetrace.core.types import AnalyzedImage, FloatArray
from facetrace.evaluation.embeddings import select_subject_face
from facetrace.search.calibration import ScoreCalibrator
from facetrace.search.service import (
    FUSION_FALSE_MATCH_RATE,
    NEAR_DUPLICATE_CORRELATION,
    NEAR_DUPLICATE_SIMILARITY,
    odd_ones_out,
)
from facetrace.vision.analyzer import open_analyzer
from facetrace.vision.packs import load_pack
from facetrace.vision.signatures import ALIGNMENT_GATE, FaceCrop, face_crop, photo_correlation, shifted_correlation

CANDIDATE_RATES = (1e-2, 1e-3, 1e-4, 1e-5)
DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def _copies(data: bytes) -> dict[str, bytes]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size

    def jpeg(img: Image.Image, quality: int) -> bytes:
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality)
        return out.getvalue()

    return {
        "q60_90pct": jpeg(image.resize((round(w * 0.9), round(h * 0.9)), Image.Resampling.LANCZOS), 60),
        "crop5pct": jpeg(image.crop((round(w * 0.05), round(h * 0.05), round(w * 0.95), round(h * 0.95))), 90),
        "q40_75pct": jpeg(image.resize((round(w * 0.75), round(h * 0.75)), Image.Resampling.LANCZOS), 40),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=DATASETS / "lfw")
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--copies", type=int, default=150)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data=Path(data), workers=1)
        analyzer = open_analyzer(settings.analyzer_options())
        pack = load_pack(settings.pack, data_dir=settings.data)
    calibrator = ScoreCalibrator(pack.calibration)
    thresholds = {rate: calibrator.similarity_at(rate) for rate in CANDIDATE_RATES}
    fusion_threshold = calibrator.similarity_at(FUSION_FALSE_MATCH_RATE)

    with (args.lfw / "pairs_resolved.csv").open(newline="") as handle:
        same_pairs = [(r["path_a"], r["path_b"]) for r in csv.DictReader(handle) if r["same"] == "1"][: args.pairs]
    with (args.lfw / "manifest.csv").open(newline="") as handle:
        by_person: dict[str, list[str]] = defaultdict(list)
        for row in csv.DictReader(handle):
            by_person[row["identity"]].append(row["path"])
    triple_people = [p for p, paths in sorted(by_person.items()) if len(paths) >= 3][: args.people]
    triple_paths = [path for p in triple_people for path in by_person[p][:3]]
    paths = list(dict.fromkeys([p for pair in same_pairs for p in pair] + triple_paths))
    subjects: dict[str, tuple[FloatArray, FaceCrop | None]] = {}

    def subject(image: AnalyzedImage | Exception) -> tuple[FloatArray, FaceCrop | None] | None:
        face = select_subject_face(image) if isinstance(image, AnalyzedImage) else None
        if face is None:
            return None
        return face.embedding.vector, face_crop(face.thumbnail_jpeg, face.detection.box, face.detection.landmarks)

    for start in range(0, len(paths), 32):
        chunk = paths[start : start + 32]
        analyzed = analyzer.analyze_batch([((args.lfw / p).read_bytes(), p) for p in chunk])
        for path, image in zip(chunk, analyzed, strict=True):
            found = subject(image)
            if found is not None:
                subjects[path] = found

    def vector(path: str) -> FloatArray | None:
        found = subjects.get(path)
        return found[0] if found else None

    def correlation(a: FaceCrop | None, b: FaceCrop | None) -> float:
        value = photo_correlation(a, b) if a is not None and b is not None else None
        return float("nan") if value is None else value

    def shifted(a: FaceCrop | None, b: FaceCrop | None) -> float:
        value = shifted_correlation(a, b) if a is not None and b is not None else None
        return float("nan") if value is None else value

    def marked(similarity: float, corr: float) -> bool:
        return similarity >= NEAR_DUPLICATE_SIMILARITY and corr >= NEAR_DUPLICATE_CORRELATION

    def person(path: str) -> str:
        return Path(path).parent.name

    # Genuine pairs: pairs_resolved's, then every same-person pair among these photos.
    official = [
        float(np.dot(a, b)) for pa, pb in same_pairs if (a := vector(pa)) is not None and (b := vector(pb)) is not None
    ]
    faces = [p for p in paths if vector(p) is not None]
    genuine: list[tuple[float, float, str, str]] = []
    near_shifted: list[float] = []  # the shifted correlation of genuine pairs similar enough to be compared
    grouped: dict[str, list[str]] = defaultdict(list)
    for path in faces:
        grouped[person(path)].append(path)
    for group in grouped.values():
        for i, pa in enumerate(group):
            for pb in group[i + 1 :]:
                sim = float(np.dot(subjects[pa][0], subjects[pb][0]))
                genuine.append((sim, correlation(subjects[pa][1], subjects[pb][1]), pa, pb))
                if sim >= NEAR_DUPLICATE_SIMILARITY:
                    near_shifted.append(shifted(subjects[pa][1], subjects[pb][1]))
    genuine.sort(reverse=True)
    official_arr = np.asarray(official)

    # Fusion triples: three photos of one person, and the same with the third photo another person's.
    def rule(photos: list[str]) -> tuple[int, ...]:
        vectors = np.vstack([vector(p) for p in photos])  # type: ignore[misc]
        return odd_ones_out(vectors @ vectors.T, fusion_threshold)

    complete = [p for p in triple_people if all(vector(x) is not None for x in by_person[p][:3])]
    same_ok = sum(not rule(by_person[p][:3]) for p in complete)
    mixed_refused = mixed_named = 0
    for i, p in enumerate(complete):
        stranger = by_person[complete[(i + 1) % len(complete)]][0]
        odd = rule([*by_person[p][:2], stranger])
        mixed_refused += bool(odd)
        mixed_named += odd == (2,)

    # Near-duplicate copies.
    copy_sims: dict[str, list[tuple[float, float]]] = defaultdict(list)
    copy_shifted: dict[str, list[float]] = defaultdict(list)
    for path in faces[: args.copies]:
        original, signature = subjects[path]
        for kind, data in _copies((args.lfw / path).read_bytes()).items():
            found = subject(analyzer.analyze(data, f"{path}:{kind}"))
            if found is None:
                copy_sims[kind].append((float("nan"), float("nan")))
            else:
                copy_sims[kind].append((float(np.dot(original, found[0])), correlation(signature, found[1])))
                copy_shifted[kind].append(shifted(signature, found[1]))
    sims = np.asarray([s for s, _, _, _ in genuine])
    corrs = np.asarray([c for _, c, _, _ in genuine])

    report: dict[str, Any] = {
        "model_id": analyzer.model_id,
        "thresholds": {f"{rate:g}": round(value, 4) for rate, value in thresholds.items()},
        "official_same_pairs": len(official),
        "official_same_pairs_passing": {
            f"{rate:g}": round(float((official_arr >= value).mean()), 4) for rate, value in thresholds.items()
        },
        "genuine_pairs": len(genuine),
        "genuine_similarity_top": [(round(s, 4), round(c, 4), a, b) for s, c, a, b in genuine[:5]],
        "genuine_correlation_top": [
            (round(s, 4), round(c, 4), a, b) for s, c, a, b in sorted(genuine, key=lambda g: -np.nan_to_num(g[1]))[:5]
        ],
        "genuine_similarity_quantiles": {q: round(float(np.quantile(sims, float(q))), 4) for q in ("0.99", "0.999")},
        "genuine_correlation_quantiles": {
            q: round(float(np.nanquantile(corrs, float(q))), 4) for q in ("0.99", "0.999")
        },
        "genuine_marked_near_duplicate": sum(marked(s, c) for s, c, _, _ in genuine),
        # The ECC gate (vision/signatures.py): genuine pairs at or above the similarity the rule needs, correlated
        # with a few pixels of shift; those at or above the gate pay for an alignment.
        "alignment_gate": ALIGNMENT_GATE,
        "genuine_compared": len(near_shifted),
        "genuine_compared_shifted_quantiles": {
            q: round(float(np.nanquantile(near_shifted, float(q))), 4) for q in ("0.5", "0.9", "0.99")
        }
        if near_shifted
        else {},
        "genuine_compared_aligned": int(np.sum(np.asarray(near_shifted) >= ALIGNMENT_GATE)),
        "fusion_false_match_rate": FUSION_FALSE_MATCH_RATE,
        "fusion_threshold": round(fusion_threshold, 4),
        "fusion_same_person_triples": len(complete),
        "fusion_same_person_accepted": round(same_ok / max(1, len(complete)), 4),
        "fusion_mixed_refused": round(mixed_refused / max(1, len(complete)), 4),
        "fusion_mixed_stranger_named": round(mixed_named / max(1, len(complete)), 4),
        "near_duplicate_rule": {"similarity": NEAR_DUPLICATE_SIMILARITY, "correlation": NEAR_DUPLICATE_CORRELATION},
        "copies": {
            kind: {
                "n": len(pairs),
                "no_face": int(sum(np.isnan(s) for s, _ in pairs)),
                "similarity_min": round(float(np.nanmin([s for s, _ in pairs])), 4),
                "correlation_min": round(float(np.nanmin([c for _, c in pairs])), 4),
                "correlation_p01": round(float(np.nanquantile([c for _, c in pairs], 0.01)), 4),
                "shifted_correlation_min": round(float(np.nanmin(copy_shifted[kind])), 4),
                "marked": sum(marked(s, c) for s, c in pairs),
            }
            for kind, pairs in copy_sims.items()
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
