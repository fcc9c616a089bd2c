"""A web archive written here with warcio from real photos, ingested through the CLI with real models, then searched:
every face keeps its image URL, the page that showed it and the crawl date, and a hit links back to its page."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from facetrace.cli.main import app
from facetrace.engine import Engine, open_engine

pytestmark = pytest.mark.slow
runner = CliRunner()

NEWS_PAGE = "https://news.example.org/2019/06/summit.html"
BLOG_PAGE = "https://blog.example.com/post/42"
OPTED_OUT_PAGE = "https://optout.example.net/me"
OBAMA2 = "https://news.example.org/2019/06/photos/obama2.jpg"


@dataclass(frozen=True)
class ArchivedImage:
    photo: str  # under knn_examples/train
    captured_at: datetime
    pages: tuple[str, ...]  # in archive order; empty if no page shows it


# What the archive holds, and so what the catalog must say about each image.
IMAGES = {
    "https://news.example.org/media/obama.jpg": ArchivedImage(
        "obama/obama.jpg", datetime(2019, 6, 3, 10, 0, 1, tzinfo=UTC), (NEWS_PAGE, BLOG_PAGE)
    ),
    OBAMA2: ArchivedImage("obama/obama2.jpg", datetime(2019, 6, 3, 10, 0, 2, tzinfo=UTC), (NEWS_PAGE,)),
    "https://news.example.org/media/biden-small.jpg": ArchivedImage(
        "biden/biden2.jpg", datetime(2019, 6, 3, 10, 0, 3, tzinfo=UTC), (NEWS_PAGE,)
    ),
    "https://cdn.example.net/biden.jpg": ArchivedImage(
        "biden/biden.jpg", datetime(2019, 6, 4, 8, 30, 0, tzinfo=UTC), (NEWS_PAGE, BLOG_PAGE)
    ),
    "https://cdn.example.net/unlinked.jpg": ArchivedImage(
        "kit_harington/john1.jpeg", datetime(2019, 6, 5, 12, 0, 0, tzinfo=UTC), ()
    ),
}
# Shown only on an opted-out page, or served from an opted-out domain.
OPTED_OUT = {
    "https://cdn.example.net/rose2.jpg": "rose_leslie/img2.jpg",
    "https://optout.example.net/rose.jpg": "rose_leslie/img1.jpg",
}
PAGES = {
    NEWS_PAGE: """<!doctype html><html><head><title>Summit</title></head><body>
        <img src="/media/obama.jpg" alt="root-relative">
        <figure><img src="photos/obama2.jpg" alt="relative"></figure>
        <img src="../../media/biden-small.jpg"
             srcset="../../media/biden-small.jpg 1x, https://cdn.example.net/biden.jpg 2x" alt="srcset">
        <script src="/app.js"></script></body></html>""",
    BLOG_PAGE: """<html><head><meta property="og:image" content="https://cdn.example.net/biden.jpg"></head>
        <body><p>Archive photo:</p><img src="https://news.example.org/media/obama.jpg"></body></html>""",
    OPTED_OUT_PAGE: """<html><body><img src="/rose.jpg"><img src="https://cdn.example.net/rose2.jpg"></body></html>""",
}


def _warc_date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_archive(path: Path, train: Path, *, compress: bool = True) -> None:
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=compress)

        def response(uri: str, content_type: str, body: bytes, when: datetime, status: str = "200 OK") -> None:
            headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(
                    uri,
                    "response",
                    payload=io.BytesIO(body),
                    http_headers=headers,
                    warc_headers_dict={"WARC-Date": _warc_date(when)},
                )
            )

        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "facetrace tests"}))
        crawl = datetime(2019, 6, 3, 9, 0, 0, tzinfo=UTC)
        # Images before and after the pages that show them: the order of a real crawl is anyone's guess.
        first, *rest = IMAGES.items()
        response(first[0], "image/jpeg", (train / first[1].photo).read_bytes(), first[1].captured_at)
        for page, html in PAGES.items():
            response(page, "text/html; charset=utf-8", html.encode(), crawl)
        for uri, image in rest:
            response(uri, "image/jpeg", (train / image.photo).read_bytes(), image.captured_at)
        for uri, photo in OPTED_OUT.items():
            response(uri, "image/jpeg", (train / photo).read_bytes(), crawl)
        response("https://news.example.org/app.js", "application/javascript", b"console.log('hi')", crawl)
        response("https://news.example.org/missing.jpg", "image/jpeg", b"<h1>404</h1>", crawl, "404 Not Found")
        first_uri = next(iter(IMAGES))
        writer.write_record(
            writer.create_revisit_record(first_uri, "sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", first_uri, "2019-06-03")
        )


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory, fr_examples: Path) -> Iterator[tuple[Engine, dict[str, object]]]:
    work = tmp_path_factory.mktemp("warc")
    archive = work / "crawl-2019.warc.gz"
    _write_archive(archive, fr_examples / "examples" / "knn_examples" / "train")
    opt_out = work / "optout.txt"
    opt_out.write_text("# asked to be left out\noptout.example.net\n")
    data = work / "data"
    result = runner.invoke(
        app,
        ["ingest", "--warc", str(archive), "--opt-out", str(opt_out), "--data", str(data), "--workers", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    engine = open_engine(data, workers=1)
    yield engine, summary
    engine.close()


def test_the_cli_reports_what_the_archive_held(archived: tuple[Engine, dict[str, object]]) -> None:
    _, summary = archived
    assert summary["errors"] == 0, summary["error_messages"]
    assert summary["images_seen"] == summary["images_added"] == len(IMAGES)
    assert summary["source_counts"] == {
        "opted_out": 2,
        "warc_pages": 3,
        "warc_images": 5,
        "warc_images_without_page": 1,
        "warc_not_image": 1,
        "warc_unsuccessful": 1,
        "warc_revisits": 1,
    }


def test_every_face_keeps_its_image_url_page_and_crawl_date(archived: tuple[Engine, dict[str, object]]) -> None:
    engine, _ = archived
    faces = engine.catalog.faces_by_id(engine.catalog.face_ids(engine.model_id).tolist()).values()
    assert {face.asset_uri for face in faces} == set(IMAGES), "every archived photo has a face; opted-out ones none"
    for face in faces:
        image = IMAGES[face.asset_uri]
        assert face.captured_at == image.captured_at
        assert face.source_page == (image.pages[0] if image.pages else None)


def test_the_catalog_records_where_in_the_archive_each_image_was(
    archived: tuple[Engine, dict[str, object]],
) -> None:
    engine, _ = archived
    with sqlite3.connect(f"file:{engine.settings.data / 'catalog.db'}?mode=ro", uri=True) as db:
        rows = {uri: json.loads(extra) for uri, extra in db.execute("SELECT uri, extra FROM assets")}
    assert set(rows) == set(IMAGES)
    for uri, extra in rows.items():
        assert extra["warc_file"] == "crawl-2019.warc.gz"
        assert extra["warc_record_id"].startswith("<urn:uuid:") and int(extra["warc_offset"]) >= 0
        pages = IMAGES[uri].pages
        if len(pages) > 1:
            assert json.loads(extra["source_pages"]) == list(pages)
        else:
            assert "source_pages" not in extra


def test_a_search_hit_links_back_to_the_page_that_showed_the_photo(
    archived: tuple[Engine, dict[str, object]], fr_examples: Path
) -> None:
    engine, _ = archived
    test_photos = fr_examples / "examples" / "knn_examples" / "test"
    hit = engine.search.file(test_photos / "obama1.jpg").pop(0).hits[0]
    assert hit.face.asset_uri in {"https://news.example.org/media/obama.jpg", OBAMA2}
    assert hit.face.source_page == NEWS_PAGE
    assert hit.face.captured_at is not None and hit.face.captured_at.year == 2019
    unlinked = engine.search.file(test_photos / "johnsnow_test1.jpg").pop(0).hits[0]
    assert unlinked.face.asset_uri == "https://cdn.example.net/unlinked.jpg"
    assert unlinked.face.source_page is None


def test_ingesting_the_archive_again_adds_nothing(
    archived: tuple[Engine, dict[str, object]], tmp_path: Path, fr_examples: Path
) -> None:
    engine, _ = archived
    archive = tmp_path / "again.warc"  # the same records, uncompressed this time
    _write_archive(archive, fr_examples / "examples" / "knn_examples" / "train", compress=False)
    opt_out = tmp_path / "optout.txt"
    opt_out.write_text("*.optout.example.net\n")
    before = engine.catalog.count_faces()
    summary = engine.ingest.run(warcs=[archive], opt_out=opt_out)
    counts = summary.source_counts
    assert (summary.images_seen, summary.images_skipped, summary.images_added) == (len(IMAGES), len(IMAGES), 0)
    assert counts["opted_out"] == len(OPTED_OUT)
    assert engine.catalog.count_faces() == before


def test_a_missing_archive_or_opt_out_list_is_refused_before_any_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    archive = tmp_path / "nope.warc.gz"
    missing = runner.invoke(app, ["ingest", "--warc", str(archive), "--data", str(data)])
    assert missing.exit_code == 2 and f"{archive}: no such WARC file" in missing.stderr
    not_warc = tmp_path / "notes.warc"
    not_warc.write_text("these are notes, not an archive\n")
    refused = runner.invoke(app, ["ingest", "--warc", str(not_warc), "--data", str(data)])
    assert refused.exit_code == 2 and "not a readable WARC" in refused.stderr
    no_list = runner.invoke(
        app, ["ingest", str(tmp_path), "--opt-out", str(tmp_path / "optout.txt"), "--data", str(data)]
    )
    assert no_list.exit_code == 2 and "cannot read the opt-out list" in no_list.stderr
    with open_engine(data, workers=1) as engine:
        assert engine.catalog.runs() == []
