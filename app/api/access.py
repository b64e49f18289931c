"""RequestContextMiddleware, the outermost layer: request id, access log, last-resort 500.

- Request id: an incoming `X-Request-ID` is kept when it is 1-128 visible ASCII characters
  (what a gateway or Label Studio's proxy would send); otherwise a uuid4 hex is made. It is
  set in `app.logging_setup.request_id` for the request's duration and returned as
  `X-Request-ID` on every response: errors, 401s and the 500 below included.
- Access log (logger `prelabel.access`): one line per request with method, route template
  (the raw path, cleaned and cut to 200 characters, when no route matched, as for a 401 answered
  before routing), status, duration in ms, principal name, client address and the error code if
  any. Never the query string, headers or bodies. Probes (`/livez`, `/readyz`, `/health`,
  `/metrics`) that succeed log at DEBUG, so they do not drown the rest.
- An exception no handler took becomes the usual JSON 500 here, rather than in Starlette's
  outermost ServerErrorMiddleware, so that response carries the request id too.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import ERROR_CODE_KEY, error_response, note_error
from app.logging_setup import request_id

access_log = logging.getLogger("prelabel.access")
log = logging.getLogger(__name__)

_VALID_ID = re.compile(r"[\x21-\x7e]{1,128}")
QUIET_ROUTES = frozenset({"/livez", "/readyz", "/health", "/metrics"})


def incoming_request_id(scope: Scope) -> str | None:
    """The client's `X-Request-ID` if it is acceptable, else None."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _VALID_ID.fullmatch(text) else None
    return None


def _clean_path(path: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in path[:200])


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        id_header = (b"x-request-id", rid.encode("ascii"))
        t0 = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"]
                headers.append(id_header)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if started:  # too late for an error body; the server closes the connection
                raise
            log.exception("unhandled error on %s %s", scope["method"], _route(scope))
            note_error(scope, "internal_error")
            response = error_response(500, "internal_error", "internal error; see the server log")
            await response(scope, receive, send_wrapper)
        finally:
            _log_access(scope, status, (time.perf_counter() - t0) * 1000)
            request_id.reset(token)


def _route(scope: Scope) -> str:
    template = getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) else _clean_path(scope["path"])


def _log_access(scope: Scope, status: int, ms: float) -> None:
    route = _route(scope)
    quiet = route in QUIET_ROUTES and status < 400
    level = logging.DEBUG if quiet else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    principal = (scope.get("state") or {}).get("principal")
    client = scope.get("client")
    fields = {
        "method": scope["method"],
        "route": route,
        "status": status,
        "duration_ms": round(ms, 1),
        "principal": principal.name if principal is not None else None,
        "client": client[0] if client else None,
    }
    code = scope.get(ERROR_CODE_KEY)
    if code:
        fields["error"] = code
    access_log.log(level, "%s %s %d %.1f ms", scope["method"], route, status, ms, extra=fields)
