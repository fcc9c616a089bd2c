"""Which face a photo is about: the rule that gives a photo's label to one face, and no more.

A manifest row or a folder names a photo's subject, not every face in it. The subject is the face that clearly
dominates the photo: each face scores its area times its centrality (1 at the photo's centre, falling linearly to
MIN_CENTRALITY at a corner), and the best face is the subject only if it scores at least DOMINANCE times the next
best. A photo with one face is about that face. Otherwise the subject is ambiguous: no face gets the label, and the
photo is flagged so that a person can say which face it is (a manifest's face_index or face_box column).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from facetrace.core.types import BoundingBox

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
