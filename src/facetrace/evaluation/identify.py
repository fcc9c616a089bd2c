"""1:N identification on a labelled manifest, with the LFW gallery/probe protocol.

The protocol (deterministic, from the manifest alone):
- people with two or more photos are sorted by identity; every `hold_out_every`-th of them (the 10th, 20th, ...) is
  held out: their first photo is left out of the gallery, so their other photos are non-mated probes;
- every other multi-photo person enrols their first photo (sorted by path) in the gallery; their other photos are
  mated probes;
- every single-photo person is a distractor in the gallery.
Closed set: rank-1 and rank-10 identification rate of the mated probes (CMC). Open set: FNIR at FPIR, the threshold
being set on the non-mated probes' best scores. Search is exact (a matrix product), so the harness measures the
model, not an approximate index.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.core.ports import FaceAnalyzer
from facetrace.evaluation import metrics
from facetrace.evaluation.datasets import LabeledImage, require_files
from facetrace.evaluation.embeddings import ProgressCallback, embed_images

logger = logging.getLogger(__name__)

DEFAULT_FPIR_TARGETS = (0.01,)
CMC_MAX_RANK = 20
# A probe without a detectable face: it matches nobody (a miss if mated, a correct rejection if not).
NO_FACE_SCORE = -1.0


@dataclass(frozen=True)
class IdentificationSplit:
    """Which photos form the gallery and the probes (paths relative to the dataset root)."""

    gallery: tuple[str, ...]
    gallery_identities: tuple[str, ...]
    mated_probes: tuple[str, ...]
    mated_identities: tuple[str, ...]
    nonmated_probes: tuple[str, ...]
    enrolled_people: int
    distractors: int
    held_out_people: int


def split_gallery_probes(manifest: Sequence[LabeledImage], *, hold_out_every: int = 10) -> IdentificationSplit:
    if hold_out_every < 2:
        raise ValueError(f"hold_out_every must be at least 2 (or every person would be held out), got {hold_out_every}")
    photos: dict[str, list[str]] = defaultdict(list)
    for image in manifest:
        photos[image.identity].append(image.path)
    gallery: list[str] = []
    gallery_identities: list[str] = []
    mated: list[str] = []
    mated_identities: list[str] = []
    nonmated: list[str] = []
    enrolled = distractors = held_out = 0
    multi_index = 0
    for identity in sorted(photos):
        paths = sorted(photos[identity])
        if len(paths) == 1:
            gallery.append(paths[0])
            gallery_identities.append(identity)
            distractors += 1
            continue
        multi_index += 1
        if multi_index % hold_out_every == 0:
            nonmated.extend(paths[1:])
            held_out += 1
            continue
        gallery.append(paths[0])
        gallery_identities.append(identity)
        mated.extend(paths[1:])
        mated_identities.extend([identity] * (len(paths) - 1))
        enrolled += 1
    return IdentificationSplit(
        gallery=tuple(gallery),
        gallery_identities=tuple(gallery_identities),
        mated_probes=tuple(mated),
        mated_identities=tuple(mated_identities),
        nonmated_probes=tuple(nonmated),
        enrolled_people=enrolled,
        distractors=distractors,
        held_out_people=held_out,
    )


@dataclass(frozen=True)
class IdentificationReport:
    model_id: str
    gallery_size: int  # gallery photos with a detected face (the searched set)
    enrolled_people: int
    distractors: int
    held_out_people: int
    mated_probes: int
    nonmated_probes: int
    gallery_images_without_face: int
    probes_without_face: int
    rank1: float
    rank10: float
    cmc: tuple[float, ...]  # identification rate at ranks 1..len(cmc)
    fnir_at_fpir: tuple[metrics.OpenSetPoint, ...]
    embed_seconds: float
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        lines = [
            f"model {self.model_id}: gallery of {self.gallery_size} faces ({self.enrolled_people} enrolled people + "
            f"{self.distractors} distractors), {self.mated_probes} mated and {self.nonmated_probes} non-mated probes "
            f"({self.held_out_people} people held out)",
            f"rank-1 {self.rank1 * 100:.2f}%, rank-10 {self.rank10 * 100:.2f}% (closed set, mated probes)",
        ]
        for point in self.fnir_at_fpir:
            lines.append(
                f"FNIR@FPIR={point.fpir_target:g}: {point.fnir * 100:.2f}% at threshold {point.threshold:.4f} "
                f"(achieved FPIR {point.fpir * 100:.2f}%)"
            )
        lines.append(
            f"without a detected face: {self.gallery_images_without_face} gallery photos, "
            f"{self.probes_without_face} probes"
        )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def evaluate_identification(
    analyzer: FaceAnalyzer,
    manifest: Sequence[LabeledImage],
    root: Path | str,
    *,
    hold_out_every: int = 10,
    fpir_targets: Sequence[float] = DEFAULT_FPIR_TARGETS,
    progress: ProgressCallback | None = None,
    cache_dir: Path | str | None = None,
    cache_key: str | None = None,
) -> IdentificationReport:
    split = split_gallery_probes(manifest, hold_out_every=hold_out_every)
    if not split.mated_probes:
        raise ValueError("the manifest has no mated probes (no person with two or more photos)")
    if not split.nonmated_probes:
        raise ValueError("the manifest has no non-mated probes (too few multi-photo people to hold any out)")
    needed = [*split.gallery, *split.mated_probes, *split.nonmated_probes]
    require_files(needed, root)
    embedded = embed_images(analyzer, root, needed, cache_dir=cache_dir, cache_key=cache_key, progress=progress)

    gallery_rows = np.array([embedded.row_of[path] for path in split.gallery], dtype=np.int64)
    gallery_found = embedded.has_face[gallery_rows]
    searched_rows = gallery_rows[gallery_found]
    gallery_vectors = embedded.vectors[searched_rows]
    # Gallery column of each enrolled identity, only for gallery photos that yielded a face.
    column_of: dict[str, int] = {}
    for column, identity in enumerate(np.array(split.gallery_identities, dtype=object)[gallery_found].tolist()):
        column_of[str(identity)] = column

    mated_rows = np.array([embedded.row_of[path] for path in split.mated_probes], dtype=np.int64)
    mate_columns = np.array([column_of.get(identity, -1) for identity in split.mated_identities], dtype=np.int64)
    mated_found = embedded.has_face[mated_rows]
    mate_scores = np.full(mated_rows.size, NO_FACE_SCORE, dtype=np.float64)
    ranks = np.full(mated_rows.size, metrics.MISSED_RANK, dtype=np.int64)
    _, found_scores, found_ranks = metrics.top_scores_and_ranks(
        embedded.vectors[mated_rows[mated_found]], gallery_vectors, mate_columns[mated_found]
    )
    mate_scores[mated_found] = found_scores
    ranks[mated_found] = found_ranks

    nonmated_rows = np.array([embedded.row_of[path] for path in split.nonmated_probes], dtype=np.int64)
    nonmated_found = embedded.has_face[nonmated_rows]
    nonmated_top = np.full(nonmated_rows.size, NO_FACE_SCORE, dtype=np.float64)
    best, _, _ = metrics.top_scores_and_ranks(
        embedded.vectors[nonmated_rows[nonmated_found]],
        gallery_vectors,
        np.full(int(nonmated_found.sum()), -1, dtype=np.int64),
    )
    nonmated_top[nonmated_found] = best

    cmc = metrics.cmc(ranks, CMC_MAX_RANK)
    open_set = tuple(metrics.fnir_at_fpir(mate_scores, ranks, nonmated_top, target) for target in fpir_targets)
    notes = [
        f"FPIR {point.fpir_target:g} is below the resolution of {point.nonmated_probes} non-mated probes"
        for point in open_set
        if not point.resolved
    ]
    missing_mates = int((mate_columns < 0).sum())
    if missing_mates:
        notes.append(f"{missing_mates} mated probes lost their mate (gallery photo without a face): counted as misses")
    report = IdentificationReport(
        model_id=embedded.model_id,
        gallery_size=int(gallery_vectors.shape[0]),
        enrolled_people=split.enrolled_people,
        distractors=split.distractors,
        held_out_people=split.held_out_people,
        mated_probes=len(split.mated_probes),
        nonmated_probes=len(split.nonmated_probes),
        gallery_images_without_face=int((~gallery_found).sum()),
        probes_without_face=int((~mated_found).sum() + (~nonmated_found).sum()),
        rank1=cmc[0],
        rank10=cmc[9],
        cmc=cmc,
        fnir_at_fpir=open_set,
        embed_seconds=embedded.embed_seconds,
        notes=tuple(notes),
    )
    logger.info("identification: rank-1 %.4f, rank-10 %.4f", report.rank1, report.rank10)
    return report
