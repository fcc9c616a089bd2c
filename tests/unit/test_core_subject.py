"""The rule that gives a photo's label to one face (core/subject.py), and revision 0007's written-out copy of it.

The rule measured on real photos (LFW, face_recognition's group photos) is in bench/subject_rule.py and
tests/integration/test_attribution.py; here its cases, on boxes written by hand.
"""

from __future__ import annotations

import random
from types import ModuleType, SimpleNamespace

import pytest

from facetrace.catalog.schema import MIGRATIONS_DIR
from facetrace.core import subject
from facetrace.core.subject import box_matching, centrality, decide_subject, subject_index
from facetrace.core.types import BoundingBox, SubjectChoice
from facetrace.core.vocabulary import SubjectAttribution as A
from repo_files import load_module

W, H = 640.0, 480.0
CENTRE = BoundingBox(240, 140, 400, 340)  # 160x200 at the centre
CORNER = BoundingBox(10, 10, 70, 85)  # 60x75 in a corner
LEFT = BoundingBox(100, 150, 200, 280)
RIGHT = BoundingBox(440, 150, 540, 280)


def test_centrality_falls_from_the_centre_to_the_corners() -> None:
    assert centrality(BoundingBox(310, 230, 330, 250), W, H) == 1.0
    assert centrality(BoundingBox(-10, -10, 10, 10), W, H) == subject.MIN_CENTRALITY
    halfway = centrality(BoundingBox(150, 110, 170, 130), W, H)  # halfway from the centre to a corner
    assert halfway == pytest.approx(1 - (1 - subject.MIN_CENTRALITY) / 2)
    assert centrality(CORNER, 0, 0) == 1.0  # no size known: area alone decides


def test_the_subject_is_the_dominant_face_or_nobody() -> None:
    assert subject_index([], W, H) is None
    assert subject_index([CORNER], W, H) == 0
    assert subject_index([CORNER, CENTRE], W, H) == 1
    assert subject_index([LEFT, RIGHT], W, H) is None  # alike: ambiguous
    # At the same distance from the centre, area decides: three times RIGHT's area dominates it, 1.7 times does not.
    assert subject_index([BoundingBox(30, 120, 230, 320), RIGHT], W, H) == 0
    assert subject_index([BoundingBox(60, 140, 200, 300), RIGHT], W, H) is None
    # A face in the corner must be far larger than a central one to dominate it.
    assert subject_index([BoundingBox(0, 0, 200, 200), CENTRE], W, H) is None


def test_decide_subject_says_how_the_face_was_chosen() -> None:
    boxes = [CENTRE, CORNER]
    assert decide_subject(boxes, W, H) == SubjectChoice(0, A.DOMINANT)
    assert decide_subject([CORNER], W, H) == SubjectChoice(0, A.ONLY_FACE)
    assert decide_subject([LEFT, RIGHT], W, H) == SubjectChoice(None, A.AMBIGUOUS)
    assert decide_subject([], W, H) == SubjectChoice(None, A.NO_FACE)
    assert decide_subject(boxes, W, H, face_index=1) == SubjectChoice(1, A.FACE_INDEX)
    assert decide_subject(boxes, W, H, face_index=2) == SubjectChoice(None, A.NOT_FOUND)
    assert decide_subject([], W, H, face_index=0) == SubjectChoice(None, A.NOT_FOUND)
    near_corner = BoundingBox(12, 8, 75, 80)
    assert decide_subject(boxes, W, H, face_box=near_corner) == SubjectChoice(1, A.FACE_BOX)
    assert decide_subject(boxes, W, H, face_box=BoundingBox(500, 400, 600, 470)) == SubjectChoice(None, A.NOT_FOUND)
    assert not A.AMBIGUOUS.names_a_face and not A.NOT_FOUND.names_a_face and not A.NO_FACE.names_a_face
    assert all(a.names_a_face for a in (A.ONLY_FACE, A.DOMINANT, A.FACE_INDEX, A.FACE_BOX))
    with pytest.raises(ValueError, match="not both"):
        decide_subject(boxes, W, H, face_index=0, face_box=CORNER)
    with pytest.raises(ValueError, match="counts from 0"):
        decide_subject(boxes, W, H, face_index=-1)


def test_box_matching_needs_overlap() -> None:
    assert box_matching([CENTRE, CORNER], CORNER) == 1
    assert box_matching([], CORNER) is None
    # IoU 0.25 with the corner face: under the 0.3 it needs.
    assert box_matching([CORNER], BoundingBox(10, 10, 250, 85)) is None
    assert box_matching([CORNER], BoundingBox(10, 10, 130, 85)) == 0  # IoU 0.5


def _migration() -> ModuleType:
    return load_module(MIGRATIONS_DIR / "versions" / "0007_face_attribution.py")


def test_revision_0007_applies_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The migration keeps its own copy of the rule (later tuning must not change what it did); with its constants,
    it names the same face as core/subject.py on random photos."""
    migration = _migration()
    monkeypatch.setattr(subject, "DOMINANCE", migration.DOMINANCE)
    monkeypatch.setattr(subject, "MIN_CENTRALITY", migration.MIN_CENTRALITY)
    rng = random.Random(7)
    named = 0
    for _ in range(2000):
        width, height = rng.choice([(640.0, 480.0), (250.0, 250.0), (0.0, 0.0)])
        boxes = []
        for _ in range(rng.randint(2, 5)):
            x, y, size = rng.uniform(0, 600), rng.uniform(0, 450), rng.uniform(10, 250)
            boxes.append(BoundingBox(x, y, x + size, y + size * 1.2))
        rows = [SimpleNamespace(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2) for b in boxes]
        chosen = migration._subject(rows, width, height)
        expected = subject_index(boxes, width, height)
        assert (None if chosen is None else rows.index(chosen)) == expected
        named += expected is not None
    assert 200 < named < 1800  # both outcomes were exercised
