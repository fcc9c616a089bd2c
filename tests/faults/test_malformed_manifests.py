"""Malformed manifests stop with the file and the line (docs/reliability.md): text that is not UTF-8, a quote left
open, more cells than the header has columns, a JSONL line that is not JSON. Before, a latin-1 manifest gave a
traceback naming no file, an open quote silently swallowed the rows after it, and extra cells were dropped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facetrace.core.errors import ManifestError
from facetrace.ingest.sources import iter_manifest, iter_paths

FACETRACE = [sys.executable, "-m", "facetrace"]


def _rows(manifest: Path) -> list[tuple[str, str | None]]:
    return [(Path(item.uri).name, item.label) for item in iter_manifest(manifest)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_manifest_that_is_not_utf8_names_the_file_line_column_and_byte(tmp_path: Path, suffix: str) -> None:
    manifest = tmp_path / f"people{suffix}"
    if suffix == ".csv":
        text = "path,label\na.jpg,Ana\nb.jpg,José\n"
    else:
        text = '{"path": "a.jpg", "label": "Ana"}\n{"path": "b.jpg", "label": "José"}\n'
    manifest.write_bytes(text.encode("latin-1"))  # é is the single byte 0xe9, not UTF-8
    column = text.splitlines()[2 if suffix == ".csv" else 1].index("é") + 1
    with pytest.raises(ManifestError) as caught:
        list(iter_manifest(manifest))
    line = 3 if suffix == ".csv" else 2
    assert str(caught.value) == (
        f"{manifest}:{line}: not UTF-8 text: byte 0xe9 at column {column} (save the file as UTF-8)"
    )


def test_a_list_file_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    listing = tmp_path / "photos.txt"
    listing.write_bytes("a.jpg\nFoto_Gón.jpg\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=rf"^{listing}:2: not UTF-8 text: byte 0xf3 at column 7"):
        list(iter_paths([Path(f"@{listing}")]))


def test_a_utf8_manifest_with_a_byte_order_mark_and_accents_still_reads(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"\xef\xbb\xbf" + "path,label\na.jpg,José\n".encode())
    assert _rows(manifest) == [("a.jpg", "José")]


def test_an_unterminated_quote_names_the_line_where_it_opens_instead_of_swallowing_rows(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text('path,label\na.jpg,Ana\nb.jpg,"Bob\nc.jpg,Cy\nd.jpg,Di\n')
    with pytest.raises(ManifestError) as caught:
        list(iter_manifest(manifest))
    message = str(caught.value)
    assert message.startswith(f"{manifest}:3: the quote that opens the label field on this line is not closed")
    assert "runs on to line 5" in message


def test_an_unterminated_quote_in_a_later_field_of_a_multiline_file_is_placed_right(tmp_path: Path) -> None:
    manifest = tmp_path / "m.tsv"
    manifest.write_text('path\tlabel\tsource_page\na.jpg\tAna\thttp://x\nb.jpg\tBob\t"http://y\nc.jpg\tCy\tz\n')
    with pytest.raises(ManifestError, match=rf"^{manifest}:3: the quote that opens the source_page field"):
        list(iter_manifest(manifest))


def test_quoted_fields_that_close_on_their_line_are_read_as_before(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text('path,label,face_box\na.jpg,"Smith, Ana","1,2,30,40"\nb.jpg,"He said ""hi""",\n')
    assert _rows(manifest) == [("a.jpg", "Smith, Ana"), ("b.jpg", 'He said "hi"')]


@pytest.mark.parametrize(
    ("suffix", "text", "cells"),
    [
        (".csv", "path,label\na.jpg,Ana\nb.jpg,Smith,Bob\n", "'Bob'"),
        (".tsv", "path\tlabel\na.jpg\tAna\nb.jpg\tBob\tx\ty\n", "'x', 'y'"),
    ],
)
def test_a_row_with_more_cells_than_the_header_is_refused_naming_the_cells(
    tmp_path: Path, suffix: str, text: str, cells: str
) -> None:
    manifest = tmp_path / f"m{suffix}"
    manifest.write_text(text)
    with pytest.raises(ManifestError) as caught:
        list(iter_manifest(manifest))
    assert str(caught.value).startswith(f"{manifest}:3: ")
    assert "but the header has 2 columns; the extra cells would be lost: " + cells in str(caught.value)


def test_a_jsonl_line_that_is_not_json_is_named_by_its_line(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": "a.jpg"}) + "\n\n" + '{"path": "b.jpg", label: 1}\n')
    with pytest.raises(ManifestError, match=rf"^{manifest}:3: not valid JSON: .*\(column 19\)"):
        list(iter_manifest(manifest))


def test_the_cli_prints_one_line_naming_file_and_line(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,label\nb.jpg,José\n".encode("latin-1"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("FACETRACE_")}
    done = subprocess.run(
        [*FACETRACE, "ingest", "--data", str(tmp_path / "data"), "--manifest", str(manifest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {manifest}:2: not UTF-8 text: byte 0xe9 at column 10 (save the file as UTF-8)"
    ]
