"""How long a text a person may give: every text field the API, the web UI, the CLI and Python accept is bounded
(a 10 MB case title was accepted and returned to every reader). The services check these (bounded, required), so
every front door is bounded the same; the API's request models declare the same numbers (server/schemas.py), and
docs/service.md states them."""

from __future__ import annotations

from typing import Final

from facetrace.core.errors import InvalidRequestError

MAX_TITLE: Final = 200  # a case title
MAX_LABEL: Final = 200  # a person's label (a name), given with an upload, an erasure or a lookup
MAX_TEXT: Final = 2_000  # a purpose, a legal basis, a reason (for closing a case, for an erasure)
MAX_NOTE: Final = 4_000  # a reviewer's note
MAX_PASSWORD: Final = 1_024  # a password (argon2 hashes any length; a megabyte one is only a cost)
MAX_FILE_NAME: Final = 1_024  # a probe's name stored with a search: an upload's file name, or a path

# Catalog ids are signed 64-bit integers: a larger number names nothing, and SQLite cannot even bind it (an
# OverflowError, a 500), so every front door refuses it as invalid input.
MAX_CATALOG_ID: Final = 2**63 - 1


def bounded(value: str, what: str, limit: int) -> str:
    """value if it has at most limit characters; InvalidRequestError (422 invalid_request) naming what otherwise."""
    if len(value) > limit:
        raise InvalidRequestError(f"{what} is at most {limit:,} characters, not {len(value):,}")
    return value


def catalog_id(text: str, what: str) -> int:
    """A catalog id typed into a form: a whole number from 0 to MAX_CATALOG_ID, else InvalidRequestError."""
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or int(stripped) > MAX_CATALOG_ID:
        raise InvalidRequestError(f"{what} is a whole number from 0 to {MAX_CATALOG_ID}, not {stripped[:40]!r}")
    return int(stripped)


def required(value: str, what: str, limit: int) -> str:
    """value stripped, neither blank nor longer than limit characters."""
    stripped = value.strip()
    if not stripped:
        raise InvalidRequestError(f"{what} is required and cannot be blank")
    return bounded(stripped, what, limit)
