"""Opt-out lists: web addresses whose images must not be ingested, whatever the source that offers them.

A list is a text file, one entry a line, `#` starting a comment:

    example.com                      the domain and every subdomain (www.example.com, img.example.com)
    *.example.net                    the same, written as a wildcard
    https://news.example.org/jane/   every URL that starts with this text (the scheme and a leading "www." are
    news.example.org/jane/           ignored, so http and https, with or without www, are all covered)

An image is opted out when its own URL or any page that showed it matches an entry. Matching errs towards leaving
an image out: a prefix is compared as text, so "example.org/jane" also covers "example.org/janet.jpg".
Opting out at ingest does not remove what an earlier ingest stored.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from facetrace.core.errors import ManifestError
from facetrace.ingest.sources import SourceItem, normalize_url

log = logging.getLogger(__name__)

OPTED_OUT = "opted_out"
# The extra-metadata key under which a source lists every page that showed an image (a JSON list of URLs).
SOURCE_PAGES_KEY = "source_pages"


@dataclass(frozen=True)
class OptOutList:
    """Domains (each covering its subdomains) and URL prefixes (scheme-less, without "www.")."""

    domains: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> OptOutList:
        """Read a list file. Raises ManifestError naming the file (and line) if it is missing or malformed."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{file}: cannot read the opt-out list: {exc}") from exc
        return cls.from_lines(text.splitlines(), where=str(file))

    @classmethod
    def from_lines(cls, lines: Iterable[str], where: str = "opt-out list") -> OptOutList:
        domains: set[str] = set()
        prefixes: list[str] = []
        for number, line in enumerate(lines, start=1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            if any(character.isspace() for character in entry):
                raise ManifestError(f"{where}:{number}: {entry!r} is not one domain or URL prefix")
            if "://" in entry or "/" in entry:
                prefix = _scheme_less(entry if "://" in entry else f"http://{entry}")
                if prefix is None:
                    raise ManifestError(f"{where}:{number}: {entry!r} has no host")
                prefixes.append(prefix)
            else:
                domain = entry.lower().removeprefix("*.").strip(".")
                if not domain:
                    raise ManifestError(f"{where}:{number}: {entry!r} names no domain")
                domains.add(domain.split(":", 1)[0])
        return cls(frozenset(domains), tuple(dict.fromkeys(prefixes)))

    def __len__(self) -> int:
        return len(self.domains) + len(self.prefixes)

    def matches(self, url: str | None) -> bool:
        """Whether this web URL is covered by an entry (never true for a local path or None)."""
        if not url:
            return False
        comparable = _scheme_less(url)
        host = urllib.parse.urlsplit(normalize_url(url)).hostname
        if comparable is None or not host:
            return False
        labels = host.split(".")
        # example.com covers a.b.example.com: try every suffix of the host's labels.
        if any(".".join(labels[start:]) in self.domains for start in range(len(labels))):
            return True
        return comparable.startswith(self.prefixes) if self.prefixes else False

    def blocks(self, item: SourceItem) -> bool:
        """Whether the image's URL, its source page, or any page listed under extra["source_pages"] matches."""
        return any(self.matches(url) for url in (item.uri, item.source_page, *pages_listed_in(item.extra)))


def pages_listed_in(extra: dict[str, str]) -> list[str]:
    """The pages a source listed for an image under extra["source_pages"] (a JSON list); [] if none or malformed."""
    raw = extra.get(SOURCE_PAGES_KEY)
    if not raw:
        return []
    try:
        pages = json.loads(raw)
    except json.JSONDecodeError:
        return [raw]  # one page written plainly
    return [str(page) for page in pages] if isinstance(pages, list) else [str(pages)]


def skip_opted_out(items: Iterable[SourceItem], opt_out: OptOutList, counts: Counter[str]) -> Iterator[SourceItem]:
    """The items the list does not block; each blocked one is counted under "opted_out" and never read."""
    for item in items:
        if opt_out.blocks(item):
            counts[OPTED_OUT] += 1
            log.debug("opted out: %s", item.uri)
            continue
        yield item


def _scheme_less(url: str) -> str | None:
    """host[:port]/path?query of a web URL, host without a leading "www.", or None if it has no host."""
    normal = normalize_url(url)
    parts = urllib.parse.urlsplit(normal)
    if not parts.netloc:
        return None
    netloc = parts.netloc.rsplit("@", 1)[-1].removeprefix("www.")
    rest = urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
    return netloc + rest
