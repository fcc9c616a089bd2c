"""Which face a photo is about: the rule that gives a photo's label to one face, and no more.

A manifest row or a folder names a photo's subject, not every face in it. The subject is the face that clearly
dominates the photo: each face scores its area times its centrality (1 at the photo's centre, falling linearly to
MIN_CENTRALITY at a corner), and the best face is the subject only if it scores at least DOMINANCE times the next
best. A photo with one face is about that face. Otherwise the subject is ambiguous: no face gets the label, and the
photo is flagged so that a person can say which face it is (a manifest's face_index or face_box column).

decide_subject is the one decision ingest makes for a labelled photo: the manifest's face first, else this rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from facetrace.core.types import BoundingBox, SubjectChoice
from facetrace.core.vocabulary import SubjectAttribution

DOMINANCE = 2.0
MIN_CENTRALITY = 0.25


def centrality(box: BoundingBox, width: float, height: float) -> float:
    """1.0 for a box centred in the photo, MIN_CENTRALITY for one centred on a corner (linear in the distance)."""
    if width <= 0 or height <= 0:
        return 1.0
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    distance = math.hypot(cx - width / 2, cy - height / 2) / math.hypot(width / 2, height / 2)
    return max(MIN_CENTRALITY, 1.0 - (1.0 - MIN_CENTRALITY) * min(distance, 1.0))


def subject_index(boxes: Sequence[BoundingBox], width: float, height: float) -> int | None:
    """The position in boxes of the photo's subject, or None when no face clearly dominates (or there is none)."""
    if not boxes:
        return None
    if len(boxes) == 1:
        return 0
    scores = [box.area * centrality(box, width, height) for box in boxes]
    order = sorted(range(len(boxes)), key=lambda i: scores[i], reverse=True)
    best, runner_up = order[0], order[1]
    return best if scores[best] >= DOMINANCE * scores[runner_up] else None


def box_matching(boxes: Sequence[BoundingBox], wanted: BoundingBox, min_iou: float = 0.3) -> int | None:
    """The position of the box that best overlaps wanted (a manifest's face_box), if any overlaps at min_iou."""
    best = max(range(len(boxes)), key=lambda i: boxes[i].iou(wanted), default=None)
    if best is None or boxes[best].iou(wanted) < min_iou:
        return None
    return best


def decide_subject(
    boxes: Sequence[BoundingBox],
    width: float,
    height: float,
    *,
    face_index: int | None = None,
    face_box: BoundingBox | None = None,
) -> SubjectChoice:
    """Which of a labelled photo's faces (boxes, in detector order) its label names, and how that was decided.

    A manifest's face_index (0-based, detector order) or face_box (matched by IoU) names the face; if it names none
    of the detected faces, no face gets the label (NOT_FOUND). Without them: a single face is the subject, several
    faces follow the dominance rule (subject_index), and a photo where none dominates is AMBIGUOUS (one with no face
    at all: NO_FACE). Raises ValueError for a negative face_index, or for both face_index and face_box.
    """
    if face_index is not None and face_box is not None:
        raise ValueError("give a photo's face_index or its face_box, not both")
    if face_index is not None:
        if face_index < 0:
            raise ValueError(f"face_index counts from 0, got {face_index}")
        if face_index >= len(boxes):
            return SubjectChoice(None, SubjectAttribution.NOT_FOUND)
        return SubjectChoice(face_index, SubjectAttribution.FACE_INDEX)
    if face_box is not None:
        matched = box_matching(boxes, face_box)
        return SubjectChoice(
            matched, SubjectAttribution.FACE_BOX if matched is not None else SubjectAttribution.NOT_FOUND
        )
    if not boxes:
        return SubjectChoice(None, SubjectAttribution.NO_FACE)
    if len(boxes) == 1:
        return SubjectChoice(0, SubjectAttribution.ONLY_FACE)
    chosen = subject_index(boxes, width, height)
    return SubjectChoice(chosen, SubjectAttribution.DOMINANT if chosen is not None else SubjectAttribution.AMBIGUOUS)
