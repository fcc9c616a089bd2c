"""Ingest progress on a terminal: a total counted up front where the sources allow, the rate and the time left, and
a finished bar on its own line (cli/progress.py)."""

from __future__ import annotations

import io
from pathlib import Path

from facetrace.cli.progress import count_inputs, ingest_bar
from facetrace.ingest.runner import IngestProgress


def test_the_total_is_counted_from_folders_and_manifests_but_not_archives(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.png", "notes.txt"):
        (folder / name).write_bytes(b"x")
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri,label\n/x/1.jpg,a\n/x/2.jpg,b\n/x/3.jpg,c\n")
    assert count_inputs([folder], [manifest], []) == 2 + 3
    assert count_inputs([folder], [], [tmp_path / "pages.warc.gz"]) is None  # a WARC's images are known as it is read
    assert count_inputs([tmp_path / "missing"], [], []) in (None, 0)  # the run reports the missing source


def test_the_bar_shows_done_of_total_the_counts_and_ends_on_its_own_line() -> None:
    out = io.StringIO()
    with ingest_bar(10, file=out, force_terminal=True) as bar:
        bar(IngestProgress(images_seen=3, images_added=2, images_skipped=1, faces_added=4))
        bar(IngestProgress(images_seen=10, images_added=9, images_skipped=1, faces_added=12, errors=0))
    text = out.getvalue()
    assert "10/10" in text and "9 added, 1 known, 12 faces, 0 errors" in text
    assert "\n" in text.rsplit("0 errors", 1)[1]  # finished: the summary printed after it starts a line of its own
