"""Where images come from: folders, file lists and manifests (CSV/JSONL) with provenance.

Sources yield SourceItems lazily, so a manifest of millions of lines is never held in memory. Reading the bytes is
deferred to SourceItem.read(), which the runner calls in batches.
"""

from __future__ import annotations

import codecs
import csv
import errno
import json
import logging
import math
import os
import re
import stat
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from facetrace.core.errors import ImageDecodeError, ManifestError
from facetrace.core.types import BoundingBox
from facetrace.core.vocabulary import WalkSkip

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif", ".heic", ".heif", ".hif", ".avif"}
)
# Photo formats a folder walk does not take (counted as unsupported_format, not as "not an image"): camera RAW, vector
# and layered formats, JPEG XL and JPEG 2000, high dynamic range.
UNSUPPORTED_IMAGE_SUFFIXES = frozenset(
    {
        *(".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf", ".rw2", ".pef"),
        *(".srw", ".x3f", ".3fr", ".erf", ".kdc", ".mrw", ".raw", ".rwl", ".iiq"),
        *(".svg", ".svgz", ".psd", ".psb", ".xcf", ".eps", ".ai"),
        *(".jxl", ".jp2", ".j2k", ".jpx", ".exr", ".hdr"),
    }
)
MANIFEST_URI_KEYS = ("uri", "url", "path", "file")
MANIFEST_KNOWN_KEYS = frozenset(
    {
        *MANIFEST_URI_KEYS,
        "source_page",
        "captured_at",
        "label",
        "identity",
        "legal_basis",
        "retain_days",
        "face_index",
        "face_box",
    }
)
MAX_FETCH_BYTES = 64 * 1024 * 1024
FETCH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SourceItem:
    """One image to ingest and what is known of where it came from."""

    uri: str
    source_page: str | None = None
    captured_at: datetime | None = None
    label: str | None = None
    legal_basis: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # Days to keep the image and its faces after ingest; the purge job deletes them afterwards (None: keep).
    retain_days: int | None = None
    # Which face the label names (the photo's subject): face_index counts the detected faces from 0 in detector order
    # (largest first); face_box is (x1, y1, x2, y2) in pixels of the upright photo, matched to a detected face by
    # overlap. Neither: the face that clearly dominates the photo, if one does (core/subject.py).
    face_index: int | None = None
    face_box: BoundingBox | None = None
    # The bytes themselves when the source already holds them (a WARC record's body): uri is then provenance only
    # and is never fetched.
    payload: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.face_index is not None and self.face_box is not None:
            raise ValueError(f"{self.uri}: give face_index or face_box, not both (they name the same face)")
        if self.face_index is not None and self.face_index < 0:
            raise ValueError(f"{self.uri}: face_index counts faces from 0, got {self.face_index}")

    def read(self, max_bytes: int = MAX_FETCH_BYTES) -> bytes:
        """The encoded image. Raises ImageDecodeError naming the uri if it cannot be read."""
        if self.payload is not None:
            if len(self.payload) > max_bytes:
                raise ImageDecodeError(self.uri, f"larger than {max_bytes:,} bytes")
            return self.payload
        return read_uri(self.uri, max_bytes)


def read_uri(uri: str, max_bytes: int = MAX_FETCH_BYTES) -> bytes:
    parsed = urllib.parse.urlparse(uri)
    try:
        if parsed.scheme in ("http", "https"):
            with urllib.request.urlopen(uri, timeout=FETCH_TIMEOUT_S) as response:
                data: bytes = response.read(max_bytes + 1)
        else:
            path = Path(urllib.parse.unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
            if path.stat().st_size > max_bytes:
                raise ImageDecodeError(uri, f"file is larger than {max_bytes:,} bytes")
            data = path.read_bytes()
    except ImageDecodeError:
        raise
    except OSError as exc:  # missing file, permission, network failure (URLError is an OSError)
        raise ImageDecodeError(uri, f"cannot read: {exc}") from exc
    if len(data) > max_bytes:
        raise ImageDecodeError(uri, f"larger than {max_bytes:,} bytes")
    return data


def iter_paths(paths: Iterable[Path], counts: Counter[str] | None = None) -> Iterator[SourceItem]:
    """Image files under folders (recursively, sorted for a stable order), single files, and @lists of paths.

    A folder walk takes the files whose suffix is an image's (IMAGE_SUFFIXES) and passes over the rest, counting
    each in counts under "skipped_" and its WalkSkip reason: not an image by its suffix, a photo format it does not
    take, hidden (a name starting with "."; a hidden folder counts once), a broken link, a link back into a folder
    the walk is inside, unreadable. Linked folders are followed. A file named on its own is taken whatever its
    suffix (decoding says if it is no image)."""
    tally: Counter[str] = counts if counts is not None else Counter()
    for path in paths:
        if str(path).startswith("@"):
            yield from _iter_file_list(Path(str(path)[1:]))
        elif path.is_dir():
            yield from _walk(path, tally, frozenset())
        elif path.exists():
            yield SourceItem(uri=str(path.resolve()))
        else:
            raise ManifestError(f"{path}: no such file or folder")


def skip_key(reason: WalkSkip) -> str:
    """The source_counts key of a walk's skip."""
    return f"skipped_{reason}"


def _walk(folder: Path, counts: Counter[str], inside: frozenset[tuple[int, int]]) -> Iterator[SourceItem]:
    try:
        status = folder.stat()
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        counts[skip_key(WalkSkip.UNREADABLE)] += 1
        log.warning("%s: cannot read the folder, skipped: %s", folder, exc.strerror or exc)
        return
    here = (status.st_dev, status.st_ino)
    if here in inside:
        counts[skip_key(WalkSkip.LINK_LOOP)] += 1
        log.info("%s: a link back into a folder the walk is inside, not followed", folder)
        return
    inside = inside | {here}
    for entry in entries:
        if entry.name.startswith("."):
            counts[skip_key(WalkSkip.HIDDEN)] += 1
            continue
        try:
            mode = entry.stat().st_mode  # follows links
        except OSError as exc:
            reason = {errno.ENOENT: WalkSkip.BROKEN_LINK, errno.ELOOP: WalkSkip.LINK_LOOP}.get(
                exc.errno or 0, WalkSkip.UNREADABLE
            )
            counts[skip_key(reason)] += 1
            log.info("%s: skipped (%s)", entry.path, reason)
            continue
        path = Path(entry.path)
        if stat.S_ISDIR(mode):
            yield from _walk(path, counts, inside)
            continue
        suffix = path.suffix.lower()
        if stat.S_ISREG(mode) and suffix in IMAGE_SUFFIXES:
            yield SourceItem(uri=str(path.resolve()))
        elif stat.S_ISREG(mode) and suffix in UNSUPPORTED_IMAGE_SUFFIXES:
            counts[skip_key(WalkSkip.UNSUPPORTED_FORMAT)] += 1
            log.info("%s: a %s photo, a format facetrace does not take", entry.path, suffix)
        else:
            counts[skip_key(WalkSkip.NOT_AN_IMAGE)] += 1


def _iter_file_list(list_path: Path) -> Iterator[SourceItem]:
    base = list_path.parent
    try:
        handle = list_path.open("rb")
    except OSError as exc:
        raise ManifestError(f"{list_path}: cannot read the list: {exc.strerror or exc}") from exc
    with handle:
        for _, line in _utf8_lines(handle, list_path):
            entry = line.strip()
            if entry and not entry.startswith("#"):
                yield _item(entry, base)


def _utf8_lines(handle: IO[bytes], path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines, numbered from 1, decoded as UTF-8 (a leading byte-order mark dropped), line endings kept.
    A line that is not UTF-8 raises ManifestError naming the file, the line, the column and the byte."""
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(
                f"{path}:{number}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} "
                "(save the file as UTF-8)"
            ) from None


def iter_manifest(manifest: Path) -> Iterator[SourceItem]:
    """Rows of a CSV (with a header) or JSONL manifest: uri (or url/path/file), source_page, captured_at (ISO 8601),
    label (or identity), legal_basis, retain_days (whole days to keep after ingest), and which face the label names:
    face_index (0-based, in detector order: largest first) or face_box ("x1,y1,x2,y2" in pixels of the upright
    photo; in JSONL also a list); any other column is kept as extra metadata. Relative paths are relative to the
    manifest's folder. A malformed row raises ManifestError naming the line."""
    base = manifest.parent
    suffix = manifest.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _iter_jsonl(manifest, base)
    elif suffix in (".csv", ".tsv"):
        yield from _iter_csv(manifest, base, delimiter="\t" if suffix == ".tsv" else ",")
    else:
        raise ManifestError(f"{manifest}: a manifest must end in .csv, .tsv or .jsonl")


def _iter_csv(manifest: Path, base: Path, delimiter: str) -> Iterator[SourceItem]:
    """Rows of a CSV or TSV manifest. Refused with file and line: a line that is not UTF-8, a row with more cells
    than the header has columns (they would be dropped), and a field that runs over a line break: no manifest field
    holds one, so it is a quote left open, which would swallow the rows after it."""
    with _open_manifest(manifest) as handle:
        lines = _utf8_lines(handle, manifest)
        reader = csv.reader((line for _, line in lines), delimiter=delimiter)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ManifestError(f"{manifest}:1: the header is not valid CSV: {exc}") from exc
        fields = [f.strip().lower() for f in header or []]
        if not any(k in fields for k in MANIFEST_URI_KEYS):
            raise ManifestError(f"{manifest}: the header needs a column named one of {', '.join(MANIFEST_URI_KEYS)}")
        _check_one_line(manifest, 1, reader.line_num, header or [], fields)
        while True:
            first_line = reader.line_num + 1
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                raise ManifestError(f"{manifest}:{reader.line_num}: not valid CSV: {exc}") from exc
            if cells is None:
                return
            if not cells:
                continue  # a blank line
            where = f"{manifest}:{first_line}"
            _check_one_line(manifest, first_line, reader.line_num, cells, fields)
            if len(cells) > len(fields):
                extra = ", ".join(repr(cell) for cell in cells[len(fields) :])
                raise ManifestError(
                    f"{where}: {len(cells)} cells but the header has {len(fields)} columns; the extra cells would be "
                    f"lost: {_shorten(extra)} (quote a value that holds a {_delimiter_name(delimiter)})"
                )
            clean = {name: value.strip() for name, value in zip(fields, cells, strict=False)}
            yield _row_item(clean, base, where)


def _check_one_line(manifest: Path, first_line: int, last_line: int, cells: list[str], fields: list[str]) -> None:
    """Refuse a row whose field holds a line break: csv reads an unterminated quote as one field running on to the
    next quote or the end of the file, silently taking the rows between into it."""
    line = first_line
    for position, cell in enumerate(cells):
        if "\n" in cell or "\r" in cell:
            column = fields[position] if position < len(fields) and fields[position] else f"column {position + 1}"
            raise ManifestError(
                f"{manifest}:{line}: the quote that opens the {column} field on this line is not closed on it: the "
                f"field runs on to line {last_line}, taking in the rows between; close the quote (manifest fields "
                "cannot hold line breaks)"
            )
        line += cell.count("\n")


def _delimiter_name(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else "comma"


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _open_manifest(manifest: Path) -> IO[bytes]:
    try:
        return manifest.open("rb")
    except OSError as exc:
        raise ManifestError(f"{manifest}: cannot read the manifest: {exc.strerror or exc}") from exc


def _iter_jsonl(manifest: Path, base: Path) -> Iterator[SourceItem]:
    with _open_manifest(manifest) as handle:
        for number, line in _utf8_lines(handle, manifest):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{manifest}:{number}: not valid JSON: {exc.msg} (column {exc.colno})") from exc
            if not isinstance(row, dict):
                raise ManifestError(f"{manifest}:{number}: each line must be a JSON object")
            clean = {str(k).lower(): "" if v is None else str(v) for k, v in row.items()}
            yield _row_item(clean, base, f"{manifest}:{number}")


def _row_item(row: dict[str, str], base: Path, where: str) -> SourceItem:
    uri = next((row[k] for k in MANIFEST_URI_KEYS if row.get(k)), "")
    if not uri:
        raise ManifestError(f"{where}: no uri")
    captured_at = None
    if row.get("captured_at"):
        try:
            captured_at = parse_timestamp(row["captured_at"])
        except ValueError as exc:
            raise ManifestError(f"{where}: captured_at {row['captured_at']!r} is not an ISO 8601 date") from exc
    retain_days = None
    if row.get("retain_days"):
        try:
            retain_days = int(row["retain_days"])
        except ValueError as exc:
            raise ManifestError(f"{where}: retain_days {row['retain_days']!r} is not a whole number of days") from exc
        if retain_days < 0:
            raise ManifestError(f"{where}: retain_days cannot be negative ({retain_days})")
    face_index = _face_index(row.get("face_index", ""), where)
    face_box = _face_box(row.get("face_box", ""), where)
    if face_index is not None and face_box is not None:
        raise ManifestError(f"{where}: give face_index or face_box, not both (they name the same face)")
    template = _item(uri, base)
    return SourceItem(
        uri=template.uri,
        source_page=row.get("source_page") or None,
        captured_at=captured_at,
        label=row.get("label") or row.get("identity") or None,
        legal_basis=row.get("legal_basis") or None,
        extra={k: v for k, v in row.items() if k not in MANIFEST_KNOWN_KEYS and v},
        retain_days=retain_days,
        face_index=face_index,
        face_box=face_box,
    )


def _face_index(text: str, where: str) -> int | None:
    if not text:
        return None
    try:
        index = int(text)
    except ValueError as exc:
        raise ManifestError(f"{where}: face_index {text!r} is not a whole number (faces count from 0)") from exc
    if index < 0:
        raise ManifestError(f"{where}: face_index counts faces from 0, got {index}")
    return index


def _face_box(text: str, where: str) -> BoundingBox | None:
    if not text:
        return None
    parts = [part for part in re.split(r"[\s,]+", text.strip().strip("[]()")) if part]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(value) for value in values):
        raise ManifestError(f"{where}: face_box {text!r} is not four numbers x1,y1,x2,y2 (pixels of the photo)")
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        raise ManifestError(f"{where}: face_box {text!r} must have x1 < x2 and y1 < y2")
    return BoundingBox(x1, y1, x2, y2)


def _item(entry: str, base: Path) -> SourceItem:
    if "://" in entry:
        return SourceItem(uri=entry)
    path = Path(entry)
    return SourceItem(uri=str((path if path.is_absolute() else base / path).resolve()))


def normalize_url(url: str) -> str:
    """One spelling of a web URL, so that a link in a page and a crawler's record of the same image compare equal:
    surrounding whitespace and embedded tabs/newlines removed (as browsers do), no fragment, lower-case scheme and
    host, no default port, "/" for an empty path, and the characters a browser would percent-encode encoded
    (existing %XX escapes are kept, in upper case). Anything without a scheme and host is returned stripped."""
    text = _URL_NOISE.sub("", url.strip())
    parts = urllib.parse.urlsplit(text)
    if not parts.scheme or not parts.netloc:
        return text
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower()
    default_port = {"http": ":80", "https": ":443"}.get(scheme)
    if default_port and netloc.endswith(default_port):
        netloc = netloc[: -len(default_port)]
    path = _quote_component(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = _quote_component(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    return urllib.parse.urlunsplit((scheme, netloc, path, query, ""))


_URL_NOISE = re.compile(r"[\t\n\r]")
_PERCENT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def _quote_component(text: str, safe: str) -> str:
    quoted = urllib.parse.quote(text, safe=safe)
    return _PERCENT_ESCAPE.sub(lambda match: match.group(0).upper(), quoted)


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 date or datetime; naive values are taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
