"""Exception handlers: every error leaves as `{"error": {"code", "message"}}`, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from app.errors import PrelabelError

log = logging.getLogger(__name__)

# Why a request was refused, for `prelabel_rejections_total{reason}`, by public error code (so a
# code added elsewhere, like "url_blocked", needs no import of its class); an error class can
# name its own (`ImageTooLarge.rejection = "bomb"`). Counted once, in MetricsMiddleware, from
# what `note_error` leaves in the ASGI scope.
REJECTIONS = {
    "overloaded": "queue_full",
    "deadline_exceeded": "deadline",
    "payload_too_large": "too_large",
    "url_blocked": "url_blocked",
    "unauthorized": "unauthorized",
    "forbidden": "unauthorized",
    "rate_limited": "rate_limited",
}
ERROR_CODE_KEY = "prelabel.error_code"
REJECTION_KEY = "prelabel.rejection"


def note_error(scope: Scope, code: str, exc: Exception | None = None) -> None:
    """Record the error code (for the access log) and the rejection reason (for the metric)."""
    scope[ERROR_CODE_KEY] = code
    reason = getattr(exc, "rejection", None) or REJECTIONS.get(code)
    if reason:
        scope[REJECTION_KEY] = reason


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    # A lone surrogate (from a client's text echoed in a message) would make the UTF-8 encoding
    # of the response itself fail: escape it rather than answer 500.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


async def send_error(scope: Scope, receive: Receive, send: Send, exc: PrelabelError) -> None:
    """Answer from a middleware (before routing) exactly as the handlers would."""
    note_error(scope, exc.code, exc)
    await error_response(exc.status, exc.code, exc.message, exc.headers)(scope, receive, send)


async def _prelabel(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PrelabelError)
    note_error(request.scope, exc.code, exc)
    if exc.status >= 500 and exc.status not in (503, 504):
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    note_error(request.scope, "validation_error")
    return error_response(422, "validation_error", "; ".join(parts))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, PrelabelError):  # FastAPI wraps errors raised while it reads
        return await _prelabel(request, exc.__cause__)  # a body (our size cap among them)
    code = {
        400: "bad_input",  # FastAPI's "error parsing the body" (a form it could not read)
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }.get(exc.status_code, "http_error")
    note_error(request.scope, code)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; see the server log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(PrelabelError, _prelabel)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
