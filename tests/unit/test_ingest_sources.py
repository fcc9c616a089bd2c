from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from facetrace.core.errors import ImageDecodeError, ManifestError
from facetrace.core.types import BoundingBox
from facetrace.ingest.sources import SourceItem, iter_manifest, iter_paths, parse_timestamp, read_uri


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_are_walked_recursively_in_a_stable_order_and_non_images_ignored(tmp_path: Path) -> None:
    _touch(tmp_path / "b" / "two.JPG")
    _touch(tmp_path / "a" / "one.png")
    _touch(tmp_path / "a" / "notes.txt")
    uris = [item.uri for item in iter_paths([tmp_path])]
    assert uris == [str((tmp_path / "a" / "one.png").resolve()), str((tmp_path / "b" / "two.JPG").resolve())]


def test_a_file_list_names_paths_relative_to_itself(tmp_path: Path) -> None:
    _touch(tmp_path / "imgs" / "x.jpg")
    (tmp_path / "list.txt").write_text("# photos\nimgs/x.jpg\n\nhttps://example.org/y.jpg\n")
    uris = [item.uri for item in iter_paths([Path(f"@{tmp_path / 'list.txt'}")])]
    assert uris == [str((tmp_path / "imgs" / "x.jpg").resolve()), "https://example.org/y.jpg"]


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        list(iter_paths([tmp_path / "nope"]))


def test_csv_manifest_keeps_provenance_and_extra_columns(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "uri,source_page,captured_at,label,legal_basis,camera\n"
        "photos/a.jpg,https://news.example/a,2022-03-01T10:00:00Z,Jane Doe,public interest,X100\n"
        "photos/b.jpg,,,,,\n"
    )
    first, second = list(iter_manifest(manifest))
    assert first.uri == str((tmp_path / "photos" / "a.jpg").resolve())
    assert first.source_page == "https://news.example/a"
    assert first.captured_at == datetime(2022, 3, 1, 10, 0, tzinfo=UTC)
    assert first.label == "Jane Doe"
    assert first.legal_basis == "public interest"
    assert first.extra == {"camera": "X100"}
    assert second.source_page is None and second.captured_at is None and second.extra == {}


def test_jsonl_manifest_and_identity_as_label(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    rows = [{"url": "https://x.example/1.jpg", "identity": "p1", "captured_at": "2020-01-02"}, {"path": "/abs/2.jpg"}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    first, second = list(iter_manifest(manifest))
    assert first.uri == "https://x.example/1.jpg" and first.label == "p1"
    assert first.captured_at == datetime(2020, 1, 2, tzinfo=UTC)
    assert second.uri == "/abs/2.jpg"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "uri,label\n,alice\n", r"m.csv:2: no uri"),
        ("m.csv", "name,label\nx,y\n", "needs a column"),
        ("m.csv", "uri,captured_at\na.jpg,yesterday\n", r"m.csv:2: captured_at 'yesterday'"),
        ("m.jsonl", '{"uri": "a.jpg"}\n{broken\n', r"m.jsonl:2: not valid JSON"),
        ("m.jsonl", '["a.jpg"]\n', r"m.jsonl:1: each line must be a JSON object"),
        ("m.xlsx", "", "must end in"),
        ("m.csv", "uri,label,face_index\na.jpg,x,1\nb.jpg,y,first\n", r"m.csv:3: face_index 'first' is not a whole"),
        ("m.csv", "uri,label,face_index\na.jpg,x,-1\n", r"m.csv:2: face_index counts faces from 0, got -1"),
        ("m.csv", 'uri,face_box\na.jpg,"1,2,3"\n', r"m.csv:2: face_box '1,2,3' is not four numbers x1,y1,x2,y2"),
        ("m.csv", 'uri,face_box\na.jpg,"1,2,3,nan"\n', r"m.csv:2: face_box '1,2,3,nan' is not four numbers"),
        ("m.csv", 'uri,face_box\na.jpg,"50,2,10,40"\n', r"m.csv:2: face_box '50,2,10,40' must have x1 < x2"),
        ("m.csv", 'uri,face_index,face_box\na.jpg,0,"1,2,3,4"\n', r"m.csv:2: give face_index or face_box, not both"),
        ("m.jsonl", '{"uri": "a.jpg", "face_index": 1.5}\n', r"m.jsonl:1: face_index '1.5' is not a whole number"),
    ],
)
def test_malformed_manifests_name_the_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    manifest = tmp_path / name
    manifest.write_text(text)
    with pytest.raises(ManifestError, match=message):
        list(iter_manifest(manifest))


def test_a_manifest_names_the_labelled_face_by_index_or_box(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        'uri,label,face_index,face_box\na.jpg,obama,1,\nb.jpg,biden,," 10.5, 20 ,110,140.25 "\nc.jpg,biden,,\n'
    )
    by_index, by_box, by_rule = list(iter_manifest(manifest))
    assert (by_index.face_index, by_index.face_box) == (1, None)
    assert (by_box.face_index, by_box.face_box) == (None, BoundingBox(10.5, 20.0, 110.0, 140.25))
    assert (by_rule.face_index, by_rule.face_box) == (None, None)
    assert by_index.extra == by_box.extra == {}  # known columns, not extra metadata
    jsonl = tmp_path / "m.jsonl"
    rows = [{"uri": "a.jpg", "label": "x", "face_box": [1, 2, 30, 40]}, {"uri": "b.jpg", "label": "y", "face_index": 0}]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    listed, counted = list(iter_manifest(jsonl))
    assert listed.face_box == BoundingBox(1, 2, 30, 40) and counted.face_index == 0
    with pytest.raises(ValueError, match="not both"):
        SourceItem(uri="x.jpg", face_index=0, face_box=BoundingBox(1, 2, 3, 4))
    with pytest.raises(ValueError, match="counts faces from 0"):
        SourceItem(uri="x.jpg", face_index=-2)


def test_timestamps_without_zone_are_utc() -> None:
    assert parse_timestamp("2021-05-06 07:08:09").tzinfo is UTC


def test_reading_missing_or_oversized_files_raises_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="cannot read"):
        read_uri(str(tmp_path / "missing.jpg"))
    big = _touch(tmp_path / "big.jpg", b"0" * 2048)
    with pytest.raises(ImageDecodeError, match="larger than"):
        read_uri(str(big), max_bytes=1024)
    assert read_uri(big.as_uri()) == b"0" * 2048


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()


def test_urls_are_fetched_over_http_and_failures_are_typed(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "a.jpg").write_bytes(b"jpegbytes")
    assert read_uri(f"{base}/a.jpg") == b"jpegbytes"
    with pytest.raises(ImageDecodeError, match="404"):
        read_uri(f"{base}/missing.jpg")
