"""The one place where facetrace's typed errors become HTTP responses: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facetrace.core.errors import FacetraceError, PermissionDeniedError, RateLimitedError, error_code
from facetrace.server.reads import record_denial

log = logging.getLogger(__name__)

# The HTTP status of each error code; the codes themselves are core's (core/errors.py ERROR_CODES), shared with the
# command line's --json errors.
ERROR_STATUS: dict[str, int] = {
    "unauthenticated": 401,
    "forbidden": 403,
    "rate_limited": 429,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "mixed_people": 422,
    "invalid_request": 422,
    "no_face": 422,
    "face_selection": 422,
    "image_too_large": 413,
    "image_unreadable": 422,
    "invalid_manifest": 422,
    "model_mismatch": 409,
    "storage_full": 507,
    "data_directory": 500,
    "catalog_unavailable": 503,
    "index_unavailable": 503,
    "model_pack": 500,
    "misconfigured": 500,
}
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
    code = error_code(exc)
    return ERROR_STATUS.get(code, 500), code


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FacetraceError)
    async def facetrace_error(request: Request, exc: FacetraceError) -> JSONResponse:
        status, code = status_for(exc)
        if isinstance(exc, PermissionDeniedError):
            record_denial(request, request.app.state.engine.audit, str(exc))
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
