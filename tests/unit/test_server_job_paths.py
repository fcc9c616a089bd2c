"""Where a server ingest job may read, what an upload is called on disk, and what the PDF's fonts can draw."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.core.errors import InvalidRequestError, PermissionDeniedError
from facetrace.server.jobs import confine, stored_name
from facetrace.server.reports_pdf import latin1


def test_confine_accepts_only_paths_that_resolve_inside_a_root(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    (root / "link.jpg").symlink_to(outside)
    assert confine(root / "a", [root]) == (root / "a").resolve()
    assert confine(str(root / "a" / "new.jpg"), [tmp_path / "elsewhere", root]) == (root / "a" / "new.jpg").resolve()
    for refused in (outside, root / ".." / "secret.jpg", root / "link.jpg", "/etc/passwd", "file:///etc/passwd"):
        with pytest.raises(PermissionDeniedError):
            confine(refused, [root])
    with pytest.raises(InvalidRequestError):
        confine(f"{root}/a\x00.jpg", [root])
    with pytest.raises(PermissionDeniedError, match="FACETRACE_INGEST_ROOTS"):
        confine(root / "a", [])
    # A sibling folder whose name starts like the root is not inside it.
    sibling = tmp_path / "photos-private"
    sibling.mkdir()
    with pytest.raises(PermissionDeniedError):
        confine(sibling, [root])


@pytest.mark.parametrize(
    ("number", "original", "expected"),
    [
        (1, "obama.jpg", "0001_obama.jpg"),
        (2, "../../etc/passwd", "0002_passwd"),
        (3, "C:\\Users\\me\\face 1.png", "0003_face_1.png"),
        (4, "..", "0004_photo"),
        (5, "é?*.jpg", "0005_jpg"),
    ],
)
def test_uploads_get_numbered_plain_names(number: int, original: str, expected: str) -> None:
    assert stored_name(number, original) == expected


def test_pdf_text_is_latin1_with_typography_spelled_out() -> None:
    assert latin1("Doorbell — 4 “quoted” ≥ 0.6…") == 'Doorbell - 4 "quoted" >= 0.6...'
    assert latin1("José Müller") == "José Müller"
    assert latin1("王") == "?"
