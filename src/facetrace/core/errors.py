"""The typed error tree. The CLI and the server translate these once, at the edge."""

from __future__ import annotations

import errno


class FacetraceError(Exception):
    """Base of every error facetrace raises on purpose."""


class ImageDecodeError(FacetraceError):
    """A file is not a readable image (corrupt, truncated, not an image, or unsupported)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: cannot read as an image: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Exceptions cross process boundaries in parallel ingest; the default pickling would call
        # __init__ with the formatted message only.
        return (ImageDecodeError, (self.source, self.reason))


class ImageTooLargeError(ImageDecodeError):
    """An image declares more pixels than the configured limit (a decompression-bomb guard)."""

    def __init__(self, source: str, pixels: int, max_pixels: int) -> None:
        super().__init__(source, f"{pixels:,} pixels exceeds the limit of {max_pixels:,} (max_image_pixels)")
        self.pixels = pixels
        self.max_pixels = max_pixels

    def __reduce__(self) -> tuple[type, tuple[str, int, int]]:  # type: ignore[override]
        return (ImageTooLargeError, (self.source, self.pixels, self.max_pixels))


class ModelPackError(FacetraceError):
    """A model pack's manifest or files do not match what they must be."""


class ModelMismatchError(FacetraceError):
    """Embeddings from two different models would be mixed (in an index or a comparison)."""

    def __init__(self, expected: str, actual: str, where: str) -> None:
        super().__init__(f"{where} holds embeddings of model {expected!r}, not {actual!r}; two models never mix")
        self.expected = expected
        self.actual = actual
        self.where = where

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return (ModelMismatchError, (self.expected, self.actual, self.where))


class NoFaceError(FacetraceError):
    """A probe or comparison image contains no detectable face."""

    def __init__(self, source: str) -> None:
        super().__init__(f"{source}: no face found")
        self.source = source

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (NoFaceError, (self.source,))


class FaceSelectionError(FacetraceError):
    """A face index asked for does not exist in the image."""


class CatalogError(FacetraceError):
    """The catalog cannot do what was asked (missing row, bad URI, schema too new)."""


class VectorIndexError(FacetraceError):
    """The vector index is unusable (missing, corrupt, or disagrees with the catalog)."""


class ManifestError(FacetraceError):
    """An ingest manifest (CSV/JSONL) is malformed; the message names the line."""


class ConfigError(FacetraceError):
    """A setting has a value facetrace cannot use."""


class AuthenticationError(FacetraceError):
    """No credentials, or credentials that match no active user (HTTP 401)."""


class RateLimitedError(FacetraceError):
    """Too many requests from one API key, or too many failed sign-ins for a user or an address (HTTP 429).

    retry_after_s: whole seconds until the caller may try again (the Retry-After header)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class PermissionDeniedError(FacetraceError):
    """The user is known but their role (or the four-eyes rule) does not allow this (HTTP 403)."""


class NotFoundError(FacetraceError):
    """A case, search, face, user or receipt asked for does not exist (HTTP 404)."""


class InvalidRequestError(FacetraceError):
    """A request is well-formed but cannot be done as asked: a blank purpose, an unknown role (HTTP 422)."""


class RequestTooLargeError(InvalidRequestError):
    """An upload or request body is larger, in bytes, than the service takes (HTTP 413)."""


class MixedProbesError(InvalidRequestError):
    """Photos given to be fused into one person's template do not show one person; odd_sources names the odd ones."""

    def __init__(self, message: str, odd_sources: tuple[str, ...]) -> None:
        super().__init__(message)
        self.odd_sources = odd_sources

    def __reduce__(self) -> tuple[type, tuple[str, tuple[str, ...]]]:
        return (MixedProbesError, (str(self), self.odd_sources))


class ConflictError(FacetraceError):
    """The request clashes with what is stored: a user name taken, a candidate already reviewed (HTTP 409)."""


class DataDirectoryError(FacetraceError):
    """A data directory that does not exist, holds no catalog, or is opened with another catalog or index than the
    ones it was made with (recorded in its facetrace.json)."""


class StorageFullError(FacetraceError):
    """A write failed because the disk (or the quota) holding part of the data directory is full. where: the folder
    or server whose disk is full; what: what could not be written there (catalog.db, a thumbnail, faces.faiss)."""

    def __init__(self, where: str, what: str, then: str = "") -> None:
        super().__init__(f"the disk holding {where} is full ({what}): free space and run the same command again{then}")
        self.where = where
        self.what = what
        self.then = then

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return (StorageFullError, (self.where, self.what, self.then))


_OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# How libraries that do not raise OSError say it (FAISS's C++ writer raises RuntimeError with strerror's text).
_OUT_OF_SPACE_TEXTS = (
    "no space left on device",
    "disk quota exceeded",
    "database or disk is full",
)


def is_out_of_space(exc: BaseException) -> bool:
    """Whether exc (or an exception it was raised from) says the disk or the quota is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _OUT_OF_SPACE_ERRNOS:
            return True
        text = str(current).lower()
        if any(phrase in text for phrase in _OUT_OF_SPACE_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


# The code that names each error for a program, the same over HTTP ({"error": {"code", "message"}}, server/errors.py
# adds the status) and on the command line with --json. Most specific first: the first class an error is an instance
# of decides its code.
ERROR_CODES: tuple[tuple[type[FacetraceError], str], ...] = (
    (AuthenticationError, "unauthenticated"),
    (PermissionDeniedError, "forbidden"),
    (RateLimitedError, "rate_limited"),
    (NotFoundError, "not_found"),
    (ConflictError, "conflict"),
    (RequestTooLargeError, "too_large"),
    (MixedProbesError, "mixed_people"),
    (InvalidRequestError, "invalid_request"),
    (NoFaceError, "no_face"),
    (FaceSelectionError, "face_selection"),
    (ImageTooLargeError, "image_too_large"),
    (ImageDecodeError, "image_unreadable"),
    (ManifestError, "invalid_manifest"),
    (ModelMismatchError, "model_mismatch"),
    (StorageFullError, "storage_full"),
    (DataDirectoryError, "data_directory"),
    (CatalogError, "catalog_unavailable"),
    (VectorIndexError, "index_unavailable"),
    (ModelPackError, "model_pack"),
    (ConfigError, "misconfigured"),
)


def error_code(exc: FacetraceError) -> str:
    """The code of the first ERROR_CODES class exc is an instance of; "error" for any other FacetraceError."""
    for cls, code in ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return "error"
