from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from facetrace.core.errors import ImageDecodeError, ManifestError
from facetrace.ingest.sources import iter_manifest, iter_paths, parse_timestamp, read_uri


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
    ],
)
def test_malformed_manifests_name_the_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    manifest = tmp_path / name
    manifest.write_text(text)
    with pytest.raises(ManifestError, match=message):
        list(iter_manifest(manifest))


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
