"""The one place where facetrace's typed errors become HTTP responses: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facetrace.core.errors import (
    AuthenticationError,
    CatalogError,
    ConfigError,
    ConflictError,
    FaceSelectionError,
    FacetraceError,
    ImageDecodeError,
    ImageTooLargeError,
    InvalidRequestError,
    ManifestError,
    ModelMismatchError,
    NoFaceError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTooLargeError,
    VectorIndexError,
)

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides its status and code.
ERROR_STATUS: tuple[tuple[type[FacetraceError], int, str], ...] = (
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (RateLimitedError, 429, "rate_limited"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (RequestTooLargeError, 413, "too_large"),
    (InvalidRequestError, 422, "invalid_request"),
    (NoFaceError, 422, "no_face"),
    (FaceSelectionError, 422, "face_selection"),
    (ImageTooLargeError, 413, "image_too_large"),
    (ImageDecodeError, 422, "image_unreadable"),
    (ManifestError, 422, "invalid_manifest"),
    (ModelMismatchError, 409, "model_mismatch"),
    (CatalogError, 503, "catalog_unavailable"),
    (VectorIndexError, 503, "index_unavailable"),
    (ConfigError, 500, "misconfigured"),
)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "bad_media",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="facetrace"'}
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def error_headers(exc: FacetraceError) -> dict[str, str] | None:
    """Retry-After on a 429, so clients know when to come back."""
    return {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimitedError) else None


def status_for(exc: FacetraceError) -> tuple[int, str]:
    for cls, status, code in ERROR_STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "error"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FacetraceError)
    async def facetrace_error(_request: Request, exc: FacetraceError) -> JSONResponse:
        status, code = status_for(exc)
        if status >= 500:
            log.error("request failed: %s", exc)
        return error_response(status, code, str(exc), error_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
            for error in exc.errors()
        )
        return error_response(422, "invalid_request", problems or "the request is invalid")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal_error", "an unexpected error occurred; the server log has details")
