"""Errors as JSON: `{"error": {"code", "message", "hint"}}`, never a stack trace.

Expected failures (a bad query, an unknown id, an upload that is not an image) carry the
library's own message; anything unexpected is logged on the server and answered with a
generic 500 that says where to look.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse as _StarletteJSON
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipsearch.errors import (
    ClipsearchError,
    ConfigError,
    LibraryError,
    ModelError,
    ModelMismatch,
    QueryError,
    UnreadableImage,
)

log = logging.getLogger("clipsearch.server")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    500: "internal",
    503: "unavailable",
}


class JSONResponse(_StarletteJSON):
    """JSON that never fails on a file name that is not UTF-8 (`caf\\xe9.jpg` from an old
    Windows volume: a str with surrogate escapes). Such a response is written with ASCII
    escapes (`\\udce9`), which is valid JSON and lossless: Python's json.loads gives back the
    exact path; the page shows the odd bytes escaped."""

    def render(self, content: object) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(
                content, ensure_ascii=True, allow_nan=False, indent=None, separators=(",", ":")
            ).encode("ascii")


class ApiError(Exception):
    """An expected failure with an HTTP status, a stable code and a message."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.hint = status, code, message, hint


def error_response(
    status: int, code: str, message: str, hint: str | None = None, headers: dict | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "hint": hint}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_bytes(code: str, message: str, hint: str | None = None) -> bytes:
    """The same JSON body, for middleware that answers before the app runs."""
    return json.dumps({"error": {"code": code, "message": message, "hint": hint}}).encode()


def _status_for(exc: ClipsearchError) -> tuple[int, str]:
    if isinstance(exc, UnreadableImage):
        return 415, "not_an_image"
    if isinstance(exc, (QueryError, ConfigError)):
        return 400, "bad_query"
    if isinstance(exc, ModelMismatch):
        return 409, "model_mismatch"
    if isinstance(exc, ModelError):
        return 503, "model_unavailable"
    if isinstance(exc, LibraryError):
        return 503, "library_unavailable"
    return 500, "error"


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "bad_json", "the request body is not valid JSON"
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        msg = str(e.get("msg", "invalid value"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return 422, "invalid", "; ".join(parts) + more


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.hint)

    @app.exception_handler(ClipsearchError)
    async def _library(request: Request, exc: ClipsearchError) -> JSONResponse:
        status, code = _status_for(exc)
        if isinstance(exc, UnreadableImage):
            return error_response(status, code, f"not an image clipsearch can read: {exc.reason}")
        response = error_response(status, code, exc.message, exc.hint)
        position = getattr(exc, "position", None)
        if position is not None:  # where in the query text (QueryError)
            body = {"error": {"code": code, "message": exc.message, "hint": exc.hint}}
            body["error"]["position"] = position
            response = JSONResponse(body, status_code=status)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _validation_message(exc)
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The server re-raises after this answer, so its log gets the traceback.
        log.error("error answering %s %s: %r", request.method, request.url.path, exc)
        return error_response(
            500, "internal", "internal server error", "Details are in the server's log."
        )
