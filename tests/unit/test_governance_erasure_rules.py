"""Which face of a requester's photo is theirs, and which confirmed faces an erasure accepts: the rules alone, on
boxes and lists (tests/integration/test_erasure.py runs them on real photos: two_people.jpg, LFW)."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.core.errors import FaceSelectionError, InvalidRequestError, NoFaceError
from facetrace.core.types import (
    AnalyzedFace,
    AnalyzedImage,
    BoundingBox,
    Detection,
    Embedding,
    ErasureCandidate,
    ErasurePreview,
    FaceQuality,
)
from facetrace.core.vocabulary import ErasureMatch, ErasureMode
from facetrace.governance.erasure import _chosen, requester_face_index


def _image(*boxes: tuple[float, float, float, float], size: int = 1000) -> AnalyzedImage:
    faces = tuple(
        AnalyzedFace(
            Detection(BoundingBox(*box), np.zeros((5, 2), np.float32), 0.9),
            FaceQuality(0.9, box[2] - box[0], 100.0, 0.9, 0.0, 0.0),
            Embedding("m", np.ones(4, np.float32) / 2),
        )
        for box in boxes
    )
    return AnalyzedImage("request.jpg", size, size, faces)


def test_the_requesters_face_is_the_clear_subject_or_the_one_named() -> None:
    assert requester_face_index(_image((400, 400, 600, 600)), None) == 0
    dominant = _image((50, 50, 110, 110), (350, 300, 650, 700))  # a small corner face and a large central one
    assert requester_face_index(dominant, None) == 1
    assert requester_face_index(dominant, 0) == 0  # the admin's choice wins, bystander or not
    with pytest.raises(FaceSelectionError, match="numbered 0-1"):
        requester_face_index(dominant, 2)
    two_alike = _image((100, 400, 300, 600), (700, 400, 900, 600))
    with pytest.raises(FaceSelectionError, match=r"say which face is theirs.*0: box \(100, 400, 300, 600\)"):
        requester_face_index(two_alike, None)
    with pytest.raises(NoFaceError):
        requester_face_index(_image(), None)


def _preview(mode: ErasureMode, *face_ids: int) -> ErasurePreview:
    listed = tuple(ErasureCandidate(i, 1, "a.jpg", None, ErasureMatch.PHOTO, 0.5) for i in face_ids)
    return ErasurePreview(mode, "request.jpg", listed)


def test_a_confirmation_takes_listed_faces_only() -> None:
    preview = _preview(ErasureMode.PROBE, 3, 5, 8)
    assert _chosen(preview, None) == [3, 5, 8]
    assert _chosen(preview, [8, 3, 3]) == [3, 8]
    assert _chosen(preview, []) == []  # by photo: the requester's face is still suppressed
    with pytest.raises(InvalidRequestError, match="face\\(s\\) 4, 9 are not on this request's list"):
        _chosen(preview, [3, 4, 9])
    with pytest.raises(InvalidRequestError, match="at least one face"):
        _chosen(_preview(ErasureMode.PERSON, 3), [])
