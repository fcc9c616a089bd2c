"""How the audit page folds repeated views (server/ui/audit_pages.py), on entries made up for the purpose; the
integration and browser tests fold real ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from facetrace.core.types import AuditEntry
from facetrace.server.ui.audit_pages import fold_views

START = datetime(2026, 12, 6, 14, 2, tzinfo=UTC)


def _entries(*rows: tuple[int, str, str, str, dict[str, object]]) -> list[AuditEntry]:
    """(minute, actor, action, target, details) oldest first -> entries newest first, as the page reads them."""
    made = [
        AuditEntry(seq, START + timedelta(minutes=minute), actor, action, target, details, "0" * 64, "0" * 64)
        for seq, (minute, actor, action, target, details) in enumerate(rows, start=1)
    ]
    return list(reversed(made))


def _shape(entries: list[AuditEntry]) -> list[tuple[str, str, int]]:
    return [(line.newest.actor, line.newest.action, line.count) for line in fold_views(entries)]


def test_a_page_of_faces_folds_into_one_line_per_action_and_case() -> None:
    in_case = {"case_id": 3}
    rows = []
    for load in range(2):  # the page, then a reload 8 minutes later
        rows += [(load * 8, "ines", "view_search", "search:7", in_case)]
        for face in range(12):
            rows += [(load * 8, "ines", "view_face", f"face:{face}", in_case)]
            rows += [(load * 8, "ines", "view_thumbnail", f"face:{face}", in_case)]
        rows += [(load * 8, "olga", "read_audit", "audit", {})]  # someone else meanwhile: no break
    lines = fold_views(_entries(*rows))
    assert _shape(_entries(*rows)) == [
        ("olga", "read_audit", 2),
        ("ines", "view_thumbnail", 24),
        ("ines", "view_face", 24),
        ("ines", "view_search", 2),
    ]
    thumbnails = lines[1]
    assert thumbnails.scope == "case:3" and len(thumbnails.targets) == 12
    assert (thumbnails.oldest.at, thumbnails.newest.at) == (START, START + timedelta(minutes=8))


def test_anything_but_a_view_ends_the_run_and_is_never_folded() -> None:
    rows = [
        (0, "ines", "view_case", "case:3", {}),
        (1, "ines", "search", "search:8", {"case_id": 3}),
        (2, "ines", "search", "search:9", {"case_id": 3}),
        (3, "ines", "view_case", "case:3", {}),
        (4, "ines", "view_case", "case:3", {}),
        (5, "olga", "denied", "GET /ui/ingest", {}),
        (6, "olga", "denied", "GET /ui/ingest", {}),
    ]
    assert _shape(_entries(*rows)) == [
        ("olga", "denied", 1),
        ("olga", "denied", 1),
        ("ines", "view_case", 2),
        ("ines", "search", 1),
        ("ines", "search", 1),
        ("ines", "view_case", 1),
    ]


def test_views_more_than_half_an_hour_apart_are_lines_of_their_own() -> None:
    rows = [(minute, "rita", "view_case", "case:1", {}) for minute in (0, 20, 40, 100)]
    assert _shape(_entries(*rows)) == [("rita", "view_case", 1), ("rita", "view_case", 2), ("rita", "view_case", 1)]
