"""Probe photos kept between upload and search (server/ui/probes.py, PendingProbes): only their uploader in their
case reaches them, they expire, each user keeps a bounded number, and a searched one is gone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrace.core.errors import NotFoundError
from facetrace.core.types import AnalyzedFace, AnalyzedImage, BoundingBox, Detection, Embedding, FaceQuality
from facetrace.server.ui.probes import PENDING_PER_USER, PENDING_TTL_S, PendingProbes


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _face(box: BoundingBox, flags: tuple[str, ...] = ()) -> AnalyzedFace:
    quality = FaceQuality(0.8, box.width, 100.0, 0.9, 0.0, 0.0, flags)
    vector = np.ones(4, dtype=np.float32) / 2
    return AnalyzedFace(Detection(box, np.zeros((5, 2), dtype=np.float32), 0.9), quality, Embedding("m", vector))


# One large centred face and a small one in a corner: the subject rule names the first.
IMAGE = AnalyzedImage(
    "group.jpg", 1000, 800, (_face(BoundingBox(400, 300, 600, 500)), _face(BoundingBox(0, 0, 50, 50), ("small",)))
)


@pytest.fixture
def store(tmp_path: Path) -> tuple[PendingProbes, Clock]:
    clock = Clock()
    return PendingProbes(tmp_path, clock), clock


def test_the_uploader_gets_it_back_in_its_case_with_its_faces(
    store: tuple[PendingProbes, Clock], tmp_path: Path
) -> None:
    pending, _clock = store
    kept = pending.add("ines", 3, b"photo bytes", IMAGE, "find her", 7)
    again, data = pending.get(kept.token, "ines", 3)
    assert data == b"photo bytes" and again == kept
    assert (again.subject, again.purpose, again.top_k) == (0, "find her", 7)
    assert [f.quality_flags for f in again.faces] == [(), ("small",)]
    assert pending.analyzed(kept.token) is IMAGE  # this process's analysis, not run again when searched
    assert PendingProbes(tmp_path, _clock).analyzed(kept.token) is None  # another process's: none
    for user, case in (("olaf", 3), ("ines", 4)):
        with pytest.raises(NotFoundError):
            pending.get(kept.token, user, case)
    for token in ("../../etc/passwd", "x" * 22, ""):
        with pytest.raises(NotFoundError):
            pending.get(token, "ines", 3)


def test_it_expires_and_a_searched_one_is_gone(store: tuple[PendingProbes, Clock]) -> None:
    pending, clock = store
    old = pending.add("ines", 3, b"a", IMAGE, "p", None)
    clock.now += PENDING_TTL_S + 1
    with pytest.raises(NotFoundError):
        pending.get(old.token, "ines", 3)
    assert old.token not in pending.tokens()  # removed from disk, not only refused
    fresh = pending.add("ines", 3, b"b", IMAGE, "p", None)
    pending.discard(fresh.token)
    assert pending.tokens() == [] and pending.analyzed(fresh.token) is None


def test_each_user_keeps_a_bounded_number(store: tuple[PendingProbes, Clock]) -> None:
    pending, clock = store
    tokens = []
    for number in range(PENDING_PER_USER + 2):
        clock.now += 1
        tokens.append(pending.add("ines", 3, bytes([number]), IMAGE, "p", None).token)
    other = pending.add("olaf", 3, b"o", IMAGE, "p", None).token
    kept = pending.tokens()
    assert sorted(kept) == sorted([*tokens[-PENDING_PER_USER:], other])  # the oldest went; olaf's untouched
