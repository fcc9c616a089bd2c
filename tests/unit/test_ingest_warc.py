"""WARC ingest without models: link extraction from pages, opt-out lists, and archives written here with warcio.

Real photos through real models from a WARC are tested in tests/integration/test_ingest_warc.py.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from facetrace.core.errors import ImageDecodeError, ManifestError
from facetrace.ingest.opt_out import OptOutList, skip_opted_out
from facetrace.ingest.sources import SourceItem, normalize_url
from facetrace.ingest.warc import RefusedRecord, image_links, iter_warc, parse_srcset

JPEG = b"\xff\xd8\xff\xe0" + b"jpeg-body" * 20
PNG = b"\x89PNG\r\n\x1a\n" + b"png-body" * 20


class Archive:
    """A WARC file written record by record, the way a crawler writes one."""

    def __init__(self, path: Path, *, compress: bool = True) -> None:
        self.path = path
        self._file = path.open("wb")
        self._writer = WARCWriter(self._file, gzip=compress)

    def response(
        self,
        uri: str,
        content_type: str,
        body: bytes,
        *,
        status: str = "200 OK",
        date: str = "2023-04-05T06:07:08Z",
        http_headers: Sequence[tuple[str, str]] = (),
        warc_headers: dict[str, str] | None = None,
    ) -> None:
        headers = StatusAndHeaders(status, [("Content-Type", content_type), *http_headers], protocol="HTTP/1.1")
        record = self._writer.create_warc_record(
            uri,
            "response",
            payload=io.BytesIO(body),
            http_headers=headers,
            warc_headers_dict={"WARC-Date": date, **(warc_headers or {})},
        )
        self._writer.write_record(record)

    def page(self, uri: str, html: str) -> None:
        self.response(uri, "text/html; charset=utf-8", html.encode())

    def record(self, uri: str, record_type: str, body: bytes, content_type: str) -> None:
        self._writer.write_record(
            self._writer.create_warc_record(uri, record_type, payload=io.BytesIO(body), warc_content_type=content_type)
        )

    def revisit(self, uri: str) -> None:
        self._writer.write_record(
            self._writer.create_revisit_record(
                uri, "sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri, "2023-01-01T00:00:00Z"
            )
        )

    def warcinfo(self) -> None:
        self._writer.write_record(self._writer.create_warcinfo_record(self.path.name, {"software": "test"}))

    def close(self) -> Path:
        self._file.close()
        return self.path


# -- links in pages ---------------------------------------------------------------------------------------------


def test_srcset_urls_keep_commas_inside_urls_and_drop_descriptors() -> None:
    assert parse_srcset("a.jpg 1x, b.jpg 2x") == ["a.jpg", "b.jpg"]
    assert parse_srcset("https://cdn.example/w_100,h_50/x.jpg 100w,\n  y.jpg 200w") == [
        "https://cdn.example/w_100,h_50/x.jpg",
        "y.jpg",
    ]
    assert parse_srcset("one.jpg, two.jpg") == ["one.jpg", "two.jpg"]
    assert parse_srcset("z.jpg (max-width: 10px, odd) 1x, last.jpg") == ["z.jpg", "last.jpg"]
    assert parse_srcset("  ") == []


def test_image_links_resolve_relative_urls_against_the_page() -> None:
    html = """<html><head>
      <meta property="og:image" content="/social/card.jpg">
      <meta name="twitter:image" content="https://cdn.example.net/tw.png">
      <link rel="image_src" href="legacy.jpg">
    </head><body>
      <img src="photos/a.jpg" alt="relative">
      <img src="/root/b.jpg" srcset="b-small.jpg 1x, //cdn.example.net/b-large.jpg 2x">
      <picture><source srcset="c.webp 1x"><img src="../c.jpg"></picture>
      <img data-src="lazy.jpg" src="data:image/gif;base64,R0lGOD">
      <a href="full/d.JPG#zoom">full size</a> <a href="next.html">next page</a>
      <img src="photos/a.jpg"> <img src="https://Example.ORG:443/E F.jpg?x=1&amp;y=2">
      <img src="javascript:alert(1)"> <img>
    </body></html>"""
    assert image_links(html, "https://example.org/news/story.html") == [
        "https://example.org/social/card.jpg",
        "https://cdn.example.net/tw.png",
        "https://example.org/news/legacy.jpg",
        "https://example.org/news/photos/a.jpg",
        "https://example.org/root/b.jpg",
        "https://example.org/news/b-small.jpg",
        "https://cdn.example.net/b-large.jpg",
        "https://example.org/news/c.webp",
        "https://example.org/c.jpg",
        "https://example.org/news/lazy.jpg",
        "https://example.org/news/full/d.JPG",
        "https://example.org/E%20F.jpg?x=1&y=2",
    ]


def test_the_first_base_href_sets_where_relative_urls_point() -> None:
    html = '<base href="https://static.example.com/assets/"><base href="/ignored/"><img src="x.jpg">'
    assert image_links(html, "https://example.com/page") == ["https://static.example.com/assets/x.jpg"]


def test_markup_split_across_chunks_is_parsed_whole() -> None:
    chunks = ["<p>text</p><im", "g sr", 'c="split.jpg"><img src="next.png">']
    assert image_links(chunks, "http://example.com/") == [
        "http://example.com/split.jpg",
        "http://example.com/next.png",
    ]


def test_malformed_markup_keeps_the_links_found_before_it() -> None:
    html = '<img src="ok.jpg"><a href="http://[::1/x.jpg">bad</a><img src="http://[::1/y.jpg">'
    html += "<![bogus <img src=z.jpg>"  # html.parser gives up here
    assert image_links(html, "https://example.com/") == ["https://example.com/ok.jpg"]


def test_urls_are_normalised_so_links_and_records_compare_equal() -> None:
    assert normalize_url(" HTTP://Example.COM:80/a b/%7e.jpg#frag ") == "http://example.com/a%20b/%7E.jpg"
    assert normalize_url("https://example.com") == "https://example.com/"
    assert normalize_url("https://example.com:8443/x\n.jpg") == "https://example.com:8443/x.jpg"
    assert normalize_url("/local/path.jpg") == "/local/path.jpg"


# -- opt-out lists ----------------------------------------------------------------------------------------------


def test_opt_out_entries_are_domains_with_subdomains_or_url_prefixes(tmp_path: Path) -> None:
    listing = tmp_path / "optout.txt"
    listing.write_text(
        "# people who asked to be left out\n"
        "\n"
        "private.example.com   # and its subdomains\n"
        "*.family.example\n"
        "https://news.example.org/people/jane/\n"
        "blog.example.net/2020/\n"
    )
    blocked = OptOutList.load(listing)
    assert blocked.domains == {"private.example.com", "family.example"}
    assert len(blocked) == 4
    for url in (
        "https://private.example.com/a.jpg",
        "http://img.private.example.com/b.jpg",
        "https://PRIVATE.example.com:8443/c.jpg",
        "https://www.family.example/d.jpg",
        "http://news.example.org/people/jane/photo.jpg",  # http although the entry said https
        "https://www.news.example.org/people/jane/x.jpg",  # with www although the entry had none
        "https://blog.example.net/2020/05/e.jpg",
    ):
        assert blocked.matches(url), url
    for url in (
        "https://example.com/a.jpg",  # the parent of a listed domain is not listed
        "https://notprivate.example.com/a.jpg",  # a suffix of the text is not a subdomain
        "https://news.example.org/people/john/x.jpg",
        "https://blog.example.net/2021/x.jpg",
        "/photos/private.example.com/x.jpg",  # local paths are never web addresses
        None,
        "",
    ):
        assert not blocked.matches(url), url


def test_an_image_is_blocked_by_its_url_its_page_or_any_page_that_showed_it() -> None:
    blocked = OptOutList.from_lines(["optout.example"])
    assert blocked.blocks(SourceItem(uri="https://optout.example/a.jpg"))
    assert blocked.blocks(SourceItem(uri="https://cdn.example/a.jpg", source_page="https://optout.example/p"))
    pages = json.dumps(["https://ok.example/p", "https://optout.example/q"])
    assert blocked.blocks(SourceItem(uri="https://cdn.example/a.jpg", extra={"source_pages": pages}))
    assert not blocked.blocks(SourceItem(uri="https://cdn.example/a.jpg", source_page="https://ok.example/p"))


def test_skipping_opted_out_items_counts_them() -> None:
    blocked = OptOutList.from_lines(["optout.example"])
    items = [SourceItem(uri=f"https://{host}/{n}.jpg") for n, host in enumerate(["a.example", "optout.example"] * 3)]
    counts: Counter[str] = Counter()
    kept = list(skip_opted_out(items, blocked, counts))
    assert [item.uri for item in kept] == [
        "https://a.example/0.jpg",
        "https://a.example/2.jpg",
        "https://a.example/4.jpg",
    ]
    assert counts == {"opted_out": 3}


def test_a_malformed_or_missing_opt_out_list_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"optout.txt:2: 'two words'"):
        OptOutList.from_lines(["fine.example", "two words"], where="optout.txt")
    with pytest.raises(ManifestError, match="cannot read the opt-out list"):
        OptOutList.load(tmp_path / "missing.txt")


# -- archives ---------------------------------------------------------------------------------------------------


def _by_uri(items: Sequence[SourceItem]) -> dict[str, SourceItem]:
    return {item.uri: item for item in items}


def test_images_carry_their_url_crawl_date_page_and_record(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "crawl.warc.gz")
    archive.warcinfo()
    # The image comes before the page that shows it: the first pass reads pages, the second images.
    archive.response("https://example.org/img/a.jpg", "image/jpeg", JPEG, date="2023-04-05T06:07:08.123456Z")
    archive.page(
        "https://example.org/news/1.html",
        '<img src="../img/a.jpg"><img srcset="b.png 1x, https://cdn.example.net/c.jpg 2x">',
    )
    archive.page("https://other.example/blog", '<img src="https://example.org/img/a.jpg">')
    archive.response("https://example.org/news/b.png", "image/png", PNG)
    archive.response("https://cdn.example.net/c.jpg", "image/jpeg", JPEG + b"c", http_headers=[("X-Cache", "HIT")])
    archive.response("https://example.org/lonely.jpg", "image/jpeg", JPEG + b"lonely")
    counts: Counter[str] = Counter()
    items = _by_uri(list(iter_warc(archive.close(), counts=counts)))

    assert set(items) == {
        "https://example.org/img/a.jpg",
        "https://example.org/news/b.png",
        "https://cdn.example.net/c.jpg",
        "https://example.org/lonely.jpg",
    }
    a = items["https://example.org/img/a.jpg"]
    assert a.read() == JPEG
    assert a.captured_at == datetime(2023, 4, 5, 6, 7, 8, 123456, tzinfo=UTC)
    assert a.source_page == "https://example.org/news/1.html"
    assert json.loads(a.extra["source_pages"]) == ["https://example.org/news/1.html", "https://other.example/blog"]
    assert a.extra["warc_file"] == "crawl.warc.gz"
    assert a.extra["warc_record_id"].startswith("<urn:uuid:")
    assert int(a.extra["warc_offset"]) > 0
    assert items["https://example.org/news/b.png"].source_page == "https://example.org/news/1.html"
    assert "source_pages" not in items["https://example.org/news/b.png"].extra
    assert items["https://cdn.example.net/c.jpg"].source_page == "https://example.org/news/1.html"
    assert items["https://example.org/lonely.jpg"].source_page is None
    assert counts == {"warc_pages": 2, "warc_images": 4, "warc_images_without_page": 1}


def test_records_that_are_not_usable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "mixed.warc", compress=False)
    archive.response("https://example.org/style.css", "text/css", b"body { color: red }")
    archive.response("https://example.org/logo.svg", "image/svg+xml", b"<svg/>")
    archive.response("https://example.org/gone.jpg", "image/jpeg", b"not found", status="404 Not Found")
    archive.response("https://example.org/moved.jpg", "image/jpeg", b"", status="301 Moved Permanently")
    archive.revisit("https://example.org/again.jpg")
    archive.record("dns:example.org", "response", b"example.org. 300 IN A 192.0.2.1", "text/dns")
    archive.record(
        "https://example.org/", "request", b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n", "application/http"
    )
    # Served with a generic type but a JPEG by its signature; a resource record (no HTTP) holding a PNG.
    archive.response("https://example.org/blob", "application/octet-stream", JPEG)
    archive.record("https://example.org/screenshot.png", "resource", PNG, "image/png")
    archive.response("https://example.org/data.bin", "application/octet-stream", b"\x00\x01 not an image")
    counts: Counter[str] = Counter()
    items = _by_uri(list(iter_warc(archive.close(), counts=counts)))
    assert set(items) == {"https://example.org/blob", "https://example.org/screenshot.png"}
    assert items["https://example.org/screenshot.png"].read() == PNG
    assert counts == {
        "warc_not_image": 3,
        "warc_unsuccessful": 2,
        "warc_revisits": 1,
        "warc_not_http": 1,
        "warc_images": 2,
        "warc_images_without_page": 2,
    }


def test_content_encoded_and_chunked_bodies_are_decoded(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "enc.warc.gz")
    archive.response(
        "https://example.org/z.jpg", "image/jpeg", gzip.compress(JPEG), http_headers=[("Content-Encoding", "gzip")]
    )
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(PNG), PNG)
    archive.response("https://example.org/c.png", "image/png", chunked, http_headers=[("Transfer-Encoding", "chunked")])
    items = _by_uri(list(iter_warc(archive.close())))
    assert items["https://example.org/z.jpg"].read() == JPEG
    assert items["https://example.org/c.png"].read() == PNG


def test_opted_out_images_are_skipped_by_their_url_or_their_page(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "optout.warc.gz")
    archive.page("https://optout.example/profile", '<img src="https://cdn.example/face.jpg">')
    archive.page("https://ok.example/", '<img src="https://optout.example/me.jpg"><img src="/fine.jpg">')
    archive.response("https://cdn.example/face.jpg", "image/jpeg", JPEG + b"1")
    archive.response("https://optout.example/me.jpg", "image/jpeg", JPEG + b"2")
    archive.response("https://ok.example/fine.jpg", "image/jpeg", JPEG + b"3")
    counts: Counter[str] = Counter()
    items = list(iter_warc(archive.close(), opt_out=OptOutList.from_lines(["optout.example"]), counts=counts))
    assert [item.uri for item in items] == ["https://ok.example/fine.jpg"]
    assert counts["opted_out"] == 2


def test_oversized_and_crawler_truncated_images_become_errors_of_the_run(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "big.warc.gz")
    archive.response("https://example.org/big.jpg", "image/jpeg", JPEG + b"x" * 1000)
    archive.response("https://example.org/part.jpg", "image/jpeg", JPEG, warc_headers={"WARC-Truncated": "length"})
    archive.response("https://example.org/small.jpg", "image/jpeg", JPEG)
    counts: Counter[str] = Counter()
    items = _by_uri(list(iter_warc(archive.close(), max_bytes=len(JPEG) + 10, counts=counts)))
    assert items["https://example.org/small.jpg"].read() == JPEG
    for uri, reason in (
        ("https://example.org/big.jpg", "larger than"),
        ("https://example.org/part.jpg", "WARC-Truncated"),
    ):
        refused = items[uri]
        assert isinstance(refused, RefusedRecord) and refused.payload is None
        with pytest.raises(ImageDecodeError, match=reason) as caught:
            refused.read()
        assert uri in str(caught.value)
    assert counts["warc_refused"] == 2 and counts["warc_images"] == 1


@pytest.mark.parametrize("compress", [True, False])
def test_an_archive_cut_short_yields_what_it_holds_then_an_error(
    tmp_path: Path, compress: bool, caplog: pytest.LogCaptureFixture
) -> None:
    suffix = ".warc.gz" if compress else ".warc"
    archive = Archive(tmp_path / f"whole{suffix}", compress=compress)
    for n in range(3):
        archive.response(f"https://example.org/{n}.jpg", "image/jpeg", JPEG + bytes([n]) * 500)
    archive.page("https://example.org/", "<p>" + "text " * 400 + "</p>")
    whole = archive.close().read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole[: len(whole) - 300])
    with caplog.at_level(logging.WARNING, logger="facetrace.ingest.warc"):
        items = list(iter_warc(cut))
    assert [item.read() for item in items[:3]] == [JPEG + bytes([n]) * 500 for n in range(3)]
    (damage,) = items[3:]
    with pytest.raises(ImageDecodeError, match="cut short"):
        damage.read()
    assert damage.uri == str(cut)


def test_a_file_that_is_not_an_archive_or_missing_is_refused_before_the_run(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(JPEG)
    with pytest.raises(ManifestError, match="not a readable WARC"):
        iter_warc(photo)
    notes = tmp_path / "notes.warc"
    notes.write_text("five words read as ARC\n")  # warcio takes any five-word line for an ARC header
    with pytest.raises(ManifestError, match=r"not a readable WARC file \(an old ARC file must be named \.arc"):
        iter_warc(notes)
    with pytest.raises(ManifestError, match="no such WARC file"):
        iter_warc(tmp_path / "missing.warc.gz")
    empty = tmp_path / "empty.warc"
    empty.write_bytes(b"")
    assert list(iter_warc(empty)) == []


def test_the_archive_is_read_lazily_and_twice_streaming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = Archive(tmp_path / "lazy.warc.gz")
    archive.response("https://example.org/a.jpg", "image/jpeg", JPEG)
    path = archive.close()
    opened: list[str] = []
    real_open = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object) -> object:
        if self == path:
            opened.append(str(args[0]) if args else "r")
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", counting_open)
    items = iter_warc(path)
    assert opened == ["rb"]  # the up-front check reads the first record only
    assert len(list(items)) == 1
    assert opened == ["rb", "rb", "rb"]  # then one pass for pages, one for images
