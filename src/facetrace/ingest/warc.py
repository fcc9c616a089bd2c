"""Images from web archives (WARC files, .warc or .warc.gz; old ARC files too), with the pages that showed them.

Each image response in the archive becomes a SourceItem carrying the record's body, so nothing is fetched from the
web: uri is the image's URL (WARC-Target-URI), captured_at the crawl time (WARC-Date), and source_page the first
page in the same archive whose markup showed it (<img src/srcset>, <picture><source srcset>, lazy-loading data-src,
og:image and twitter:image, or a link to an image file). Pages and images come in any order, so the archive is read
twice: first the HTML pages, into a map from image URL to pages, then the images. Memory grows with the number of
image URLs the pages mention, never with the archive's bytes; this is the only module that imports warcio.
"""

from __future__ import annotations

import codecs
import json
import logging
import urllib.parse
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

from warcio.archiveiterator import ArchiveIterator

from facetrace.core.errors import ImageDecodeError, ManifestError
from facetrace.ingest.opt_out import OPTED_OUT, SOURCE_PAGES_KEY, OptOutList
from facetrace.ingest.sources import IMAGE_SUFFIXES, MAX_FETCH_BYTES, SourceItem, normalize_url, parse_timestamp

log = logging.getLogger(__name__)

# Markup past a page's first 8 MiB is searched no further (pages that long are data dumps, not articles).
MAX_HTML_BYTES = 8 * 1024 * 1024
MAX_LINKS_PER_PAGE = 10_000
# A site logo is on every page; a handful of pages is provenance enough, thousands would only cost memory.
MAX_PAGES_PER_IMAGE = 20
READ_CHUNK_BYTES = 64 * 1024

ARC_SUFFIXES = (".arc", ".arc.gz")
HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Vector images have no pixels to find faces in.
NON_RASTER_CONTENT_TYPES = frozenset({"image/svg+xml"})
IMAGE_META_KEYS = frozenset({"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"})
IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)

# Keys of the counts iter_warc adds to (besides "opted_out").
PAGES = "warc_pages"  # HTML pages read for image links
IMAGES = "warc_images"  # image records handed on to be ingested
UNREFERENCED = "warc_images_without_page"  # of those, images no page in the archive showed
REVISITS = "warc_revisits"  # revisit records (a repeat capture; the content is in an earlier record): skipped
NOT_IMAGE = "warc_not_image"  # responses that are neither images nor pages (scripts, styles, JSON): skipped
NOT_HTTP = "warc_not_http"  # response records of other protocols (dns:, whois:): skipped
UNSUCCESSFUL = "warc_unsuccessful"  # responses whose HTTP status is not a complete 2xx (redirects, 404s): skipped
REFUSED = "warc_refused"  # image records reported as ingest errors (too large, truncated, undecodable, damaged)

# What decoding a record's body (chunked transfer, gzip/deflate/brotli content encoding) raises on bad data.
_BODY_ERRORS = (OSError, ValueError, EOFError, zlib.error)


class _Headers(Protocol):
    def get_header(self, name: str, default_value: str | None = None) -> str | None: ...


@dataclass(frozen=True)
class RefusedRecord(SourceItem):
    """A record that cannot become an image: reading it raises, so the runner reports it as an error of its run."""

    reason: str = ""

    def read(self, max_bytes: int = MAX_FETCH_BYTES) -> bytes:
        raise ImageDecodeError(self.uri, self.reason)


def iter_warc(
    path: str | Path,
    *,
    max_bytes: int = MAX_FETCH_BYTES,
    opt_out: OptOutList | None = None,
    counts: Counter[str] | None = None,
) -> Iterator[SourceItem]:
    """The images of one WARC file as SourceItems holding their bytes, with provenance (see the module docstring).

    extra holds warc_file, warc_record_id and warc_offset (where to find the record again) and, when several pages
    showed the image, source_pages: all of them as a JSON list. Images whose URL or any page matches opt_out are
    skipped unread. Bodies over max_bytes, truncated captures and a damaged remainder of the archive come out as
    items whose read() raises ImageDecodeError, so the run records them as errors and goes on. counts, if given,
    receives how many records went which way (the module's constants).

    The file is checked now (ManifestError if missing or not a web archive); it is read when iterated.
    """
    warc = Path(path)
    if not warc.is_file():
        raise ManifestError(f"{warc}: no such WARC file")
    _check_is_archive(warc)
    return _iter_images(warc, max_bytes, opt_out, Counter() if counts is None else counts)


def image_links(html: str | Iterable[str], page_url: str) -> list[str]:
    """The absolute, normalised http(s) URLs of the images a page shows or links, unique, in document order.

    Relative URLs resolve against page_url (or the page's <base href>), as a browser would resolve them.
    """
    parser = _ImageLinkParser(page_url)
    try:
        for chunk in [html] if isinstance(html, str) else html:
            parser.feed(chunk)
            if parser.full:
                break
        parser.close()
    except AssertionError as exc:  # html.parser's answer to some malformed markup (e.g. "<![bogus")
        log.debug("%s: markup unreadable past this point (%s); image links so far kept", page_url, exc)
    return list(parser.links)


def parse_srcset(value: str) -> list[str]:
    """The URLs of a srcset attribute ("a.jpg 1x, b.jpg 2x"), following the HTML rules: a URL runs to the next
    whitespace (so commas inside it stay, as in CDN URLs like /w_100,h_50/x.jpg) and descriptors run to the next
    comma outside parentheses."""
    urls: list[str] = []
    position, end = 0, len(value)
    while position < end:
        while position < end and (value[position].isspace() or value[position] == ","):
            position += 1
        start = position
        while position < end and not value[position].isspace():
            position += 1
        url = value[start:position]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            depth = 0
            while position < end:
                character = value[position]
                position += 1
                if character == "(":
                    depth += 1
                elif character == ")" and depth:
                    depth -= 1
                elif character == "," and not depth:
                    break
        if url:
            urls.append(url)
    return urls


class _ImageLinkParser(HTMLParser):
    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self._page_url = page_url
        self._base_url = page_url
        self._base_seen = False
        self.links: dict[str, None] = {}  # an ordered set

    @property
    def full(self) -> bool:
        return len(self.links) >= MAX_LINKS_PER_PAGE

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if tag == "base" and not self._base_seen and "href" in values:
            # Only the first <base href> counts, as in browsers.
            self._base_seen = True
            self._base_url = urllib.parse.urljoin(self._page_url, values["href"].strip())
        elif tag == "img":
            self._add(values.get("src"), values.get("data-src"))
            self._add(*parse_srcset(values.get("srcset", "")), *parse_srcset(values.get("data-srcset", "")))
        elif tag == "source":  # inside <picture>
            self._add(*parse_srcset(values.get("srcset", "")), *parse_srcset(values.get("data-srcset", "")))
        elif tag == "meta":
            key = (values.get("property") or values.get("name") or "").strip().lower()
            if key in IMAGE_META_KEYS:
                self._add(values.get("content"))
        elif _links_an_image(tag, values):
            self._add(values.get("href"))

    def _add(self, *candidates: str | None) -> None:
        for candidate in candidates:
            if not candidate or self.full:
                continue
            try:
                absolute = normalize_url(urllib.parse.urljoin(self._base_url, candidate.strip()))
            except ValueError:  # e.g. a malformed IPv6 host
                continue
            if absolute.startswith(("http://", "https://")):
                self.links[absolute] = None


def _links_an_image(tag: str, values: dict[str, str]) -> bool:
    """<link rel="image_src" href> (an older og:image), or <a href> to an image file (a thumbnail's full size)."""
    href = values.get("href")
    if not href:
        return False
    if tag == "link":
        return "image_src" in values.get("rel", "").lower().split()
    if tag != "a":
        return False
    try:
        path = urllib.parse.urlsplit(href.strip()).path
    except ValueError:  # e.g. a malformed IPv6 host
        return False
    return PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES


# -- the two passes -----------------------------------------------------------------------------------------------


def _iter_images(warc: Path, max_bytes: int, opt_out: OptOutList | None, counts: Counter[str]) -> Iterator[SourceItem]:
    pages_by_image = _pages_by_image(warc, counts)
    here: Counter[str] = Counter()
    try:
        yield from _image_items(warc, pages_by_image, max_bytes, opt_out, here)
    finally:
        counts.update(here)
        log.info("%s: %s", warc.name, ", ".join(f"{n} {key}" for key, n in sorted(here.items())) or "no records")


def _pages_by_image(warc: Path, counts: Counter[str]) -> dict[str, list[str]]:
    """First pass: image URL (normalised) -> the pages that show it, in archive order."""
    pages_by_image: dict[str, list[str]] = {}
    try:
        for record, _ in _records(warc):
            if record.rec_type != "response" or record.http_headers is None:
                continue
            if _content_type(record) not in HTML_CONTENT_TYPES or not _successful(record):
                continue
            page = _target_uri(record)
            counts[PAGES] += 1
            for link in image_links(_html_chunks(record), page):
                pages = pages_by_image.setdefault(link, [])
                if len(pages) < MAX_PAGES_PER_IMAGE and page not in pages:
                    pages.append(page)
    except _ArchiveDamaged as exc:
        # The second pass meets the same damage and reports it as an error of the run.
        log.warning("%s; image links were collected from the pages before it", exc)
    return pages_by_image


def _image_items(
    warc: Path,
    pages_by_image: dict[str, list[str]],
    max_bytes: int,
    opt_out: OptOutList | None,
    counts: Counter[str],
) -> Iterator[SourceItem]:
    """Second pass: every image record, with the pages found in the first."""
    cut_image_reported = False
    try:
        for record, archive in _records(warc):
            if record.rec_type == "revisit":
                counts[REVISITS] += 1
                continue
            if record.rec_type not in ("response", "resource"):
                continue  # warcinfo, request, metadata, conversion
            uri = _target_uri(record)
            if record.rec_type == "response" and record.http_headers is None:
                counts[NOT_HTTP] += 1
                continue
            content_type = _content_type(record)
            if content_type in HTML_CONTENT_TYPES:
                continue  # a page: read in the first pass
            if not _successful(record):
                counts[UNSUCCESSFUL] += 1
                continue
            if content_type in NON_RASTER_CONTENT_TYPES:
                counts[NOT_IMAGE] += 1
                continue
            pages = pages_by_image.get(normalize_url(uri), [])
            if opt_out is not None and any(opt_out.matches(url) for url in (uri, *pages)):
                counts[OPTED_OUT] += 1
                continue
            item = _image_item(warc, archive, record, uri, pages, content_type, max_bytes)
            if item is None:
                counts[NOT_IMAGE] += 1
                continue
            if isinstance(item, RefusedRecord):
                counts[REFUSED] += 1
                cut_image_reported = _cut_short(record)
            else:
                counts[IMAGES] += 1
                if not pages:
                    counts[UNREFERENCED] += 1
            yield item
    except _ArchiveDamaged as exc:
        if exc.cut_short and cut_image_reported:
            return  # the image the file ends inside was reported as such
        counts[REFUSED] += 1
        yield RefusedRecord(uri=str(warc), extra={"warc_file": warc.name}, reason=str(exc))


def _image_item(
    warc: Path,
    archive: Any,
    record: Any,
    uri: str,
    pages: list[str],
    content_type: str,
    max_bytes: int,
) -> SourceItem | None:
    """The record as an image item; None if it is not an image; a RefusedRecord if it is one that cannot be used."""
    headers: _Headers = record.rec_headers
    extra = {"warc_file": warc.name, "warc_record_id": str(headers.get_header("WARC-Record-ID") or "")}
    if len(pages) > 1:
        extra[SOURCE_PAGES_KEY] = json.dumps(pages)
    provenance: dict[str, Any] = {
        "uri": uri,
        "source_page": pages[0] if pages else None,
        "captured_at": _warc_date(headers.get_header("WARC-Date")),
        "extra": extra,
    }
    try:
        stream = record.content_stream()
        head = _read_up_to(stream, 16)
        if not (content_type.startswith("image/") or head.startswith(IMAGE_SIGNATURES) or _is_webp(head)):
            return None
        body = head + _read_up_to(stream, max_bytes + 1 - len(head))
    except _BODY_ERRORS as exc:  # a body that does not decompress or de-chunk
        extra["warc_offset"] = _finish_record(archive)
        return RefusedRecord(**provenance, reason=f"the archived body cannot be decoded: {exc}")
    extra["warc_offset"] = _finish_record(archive)
    if _cut_short(record):
        return RefusedRecord(**provenance, reason=f"the archive {warc.name} ends inside this image (cut short)")
    truncated = headers.get_header("WARC-Truncated")
    if truncated:
        return RefusedRecord(
            **provenance, reason=f"the crawler kept only part of this image (WARC-Truncated: {truncated})"
        )
    if len(body) > max_bytes:
        return RefusedRecord(**provenance, reason=f"larger than {max_bytes:,} bytes")
    return SourceItem(**provenance, payload=body)


# -- reading records ----------------------------------------------------------------------------------------------


class _ArchiveDamaged(Exception):
    def __init__(self, message: str, *, cut_short: bool = False) -> None:
        super().__init__(message)
        self.cut_short = cut_short  # the file ends inside a record (an interrupted download or crawl)


def _check_is_archive(warc: Path) -> None:
    try:
        with warc.open("rb") as stream:
            first = next(iter(ArchiveIterator(stream)), None)
    except Exception as exc:  # warcio raises many types (even AttributeError) on input that is not an archive
        raise ManifestError(f"{warc}: not a readable WARC or ARC file: {_first_line(exc)}") from exc
    if (first is None or not first.rec_type) and warc.stat().st_size > 0:
        raise ManifestError(f"{warc}: not a readable WARC or ARC file: no complete record in it")
    # Any line of five words reads as an ARC header, so ARC is believed only of a file named so.
    if first is not None and first.format == "arc" and not warc.name.lower().endswith(ARC_SUFFIXES):
        raise ManifestError(f"{warc}: not a readable WARC file (an old ARC file must be named .arc or .arc.gz)")


def _records(warc: Path) -> Iterator[tuple[Any, Any]]:
    """(record, iterator) for each record, streaming. Damage (garbage between records, a file that ends inside a
    record) ends the walk with _ArchiveDamaged naming where it happened, after the intact records before it."""
    size = warc.stat().st_size
    with warc.open("rb") as stream:
        archive = ArchiveIterator(stream, arc2warc=True)
        records = iter(archive)
        record = None
        while True:
            offset = archive.offset
            try:
                record = next(records)
            except StopIteration:
                break
            except Exception as exc:  # warcio raises many types (even AttributeError) on damaged input
                raise _ArchiveDamaged(
                    f"{warc}: the archive is damaged at byte {offset:,} and was read no further: {_first_line(exc)}"
                ) from exc
            if not record.rec_type:
                # warcio hands out the remains of a record whose headers were cut off as a record without a type.
                raise _ArchiveDamaged(
                    f"{warc}: the file ends inside the headers of the record at byte {offset:,}: it was cut short "
                    "(an interrupted download or crawl?); the records before it were read",
                    cut_short=True,
                )
            yield record, archive
        if (record is not None and _cut_short(record)) or archive.offset < size:
            raise _ArchiveDamaged(
                f"{warc}: the file ({size:,} bytes) ends inside a record: it was cut short (an interrupted download "
                "or crawl?); the records before it were read",
                cut_short=True,
            )


def _finish_record(archive: Any) -> str:
    """Read the current record to its end and return its offset in the file ("" if the rest is unreadable: the walk
    then stops at the damage and reports it)."""
    try:
        return str(archive.get_record_offset())
    except Exception:  # warcio raises many types on damaged input
        return ""


def _cut_short(record: Any) -> bool:
    """Whether the file ended before the record's declared length (call once the record has been read to its end)."""
    return int(getattr(record.raw_stream, "limit", 0) or 0) > 0


def _html_chunks(record: Any) -> Iterator[str]:
    """A page's markup as text, decoded incrementally, at most MAX_HTML_BYTES of it."""
    charset = _charset(record) or "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stream = record.content_stream()
    remaining = MAX_HTML_BYTES
    try:
        while remaining > 0:
            chunk = stream.read(min(READ_CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield decoder.decode(chunk)
    except _BODY_ERRORS as exc:
        log.warning("%s: page body cannot be decoded past this point: %s", _target_uri(record), exc)
    yield decoder.decode(b"", final=True)


def _read_up_to(stream: BinaryIO, limit: int) -> bytes:
    """Up to limit bytes (warcio's readers may return fewer than asked before the end)."""
    parts: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(remaining, READ_CHUNK_BYTES * 16))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _target_uri(record: Any) -> str:
    headers: _Headers = record.rec_headers
    return (headers.get_header("WARC-Target-URI") or "").strip().strip("<>")


def _content_type_header(record: Any) -> str:
    headers: _Headers | None = record.http_headers
    if headers is not None:
        return headers.get_header("Content-Type") or ""
    return str(record.content_type or "")


def _content_type(record: Any) -> str:
    return _content_type_header(record).split(";", 1)[0].strip().lower()


def _charset(record: Any) -> str | None:
    for parameter in _content_type_header(record).split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


def _successful(record: Any) -> bool:
    """A complete 2xx response (not 204 No Content, not 206 Partial Content); resource records have no status."""
    if record.http_headers is None:
        return bool(record.rec_type == "resource")
    try:
        status = int(record.http_headers.get_statuscode())
    except (TypeError, ValueError):
        return False
    return 200 <= status < 300 and status not in (204, 206)


def _warc_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_timestamp(value).astimezone(UTC)
    except ValueError:
        log.debug("unreadable WARC-Date %r", value)
        return None


def _is_webp(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip() if text else type(exc).__name__
