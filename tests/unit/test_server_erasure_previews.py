"""The web UI's pending erasure previews: the admin who saw one confirms it, within its time, once."""

from __future__ import annotations

import pytest

from facetrace.core.errors import InvalidRequestError
from facetrace.core.types import ErasurePreview
from facetrace.core.vocabulary import ErasureMode
from facetrace.server.ui import admin
from facetrace.server.ui.admin import PendingErasures


def test_a_preview_is_its_admins_until_it_expires_or_is_confirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(admin.time, "monotonic", lambda: now[0])
    pending = PendingErasures()
    preview = ErasurePreview(ErasureMode.PERSON, "obama", ())
    preview_id = pending.add("ada", preview)
    with pytest.raises(InvalidRequestError, match="preview the request again"):
        pending.take(preview_id, "bob")  # another admin's
    with pytest.raises(InvalidRequestError):
        pending.take("forged", "ada")
    assert pending.take(preview_id, "ada") is preview
    with pytest.raises(InvalidRequestError):
        pending.take(preview_id, "ada")  # being confirmed, or confirmed already
    pending.put_back(preview_id, "ada", preview)  # that confirmation failed: the admin may try again
    assert pending.take(preview_id, "ada") is preview
    later = pending.add("ada", preview)
    now[0] += PendingErasures.TTL_S + 1
    with pytest.raises(InvalidRequestError):
        pending.take(later, "ada")  # expired


def test_the_oldest_previews_go_first_when_too_many_are_kept() -> None:
    pending = PendingErasures()
    preview = ErasurePreview(ErasureMode.PERSON, "obama", ())
    first = pending.add("ada", preview)
    ids = [pending.add("ada", preview) for _ in range(PendingErasures.MAX_KEPT)]
    with pytest.raises(InvalidRequestError):
        pending.take(first, "ada")
    assert pending.take(ids[-1], "ada") is preview and pending.take(ids[0], "ada") is preview
