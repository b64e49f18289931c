"""Plain ASGI middleware (no per-request task, no body buffering): metrics and the body cap."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import REJECTION_KEY, error_response, note_error
from app.errors import PayloadTooLarge
from app.inference.metrics import Metrics


class MetricsMiddleware:
    """Counts requests by route template and status, times them, and counts rejections by
    reason (`prelabel_rejections_total`, from what `note_error` recorded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # Route templates, not raw paths: unknown paths must not explode label cardinality.
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(name, str(status)).inc()
            self.metrics.request_seconds.labels(name).observe(time.perf_counter() - t0)
            reason = scope.get(REJECTION_KEY)  # left by note_error, wherever the error arose
            if reason is not None:
                self.metrics.rejections.labels(reason).inc()


class BodyLimitMiddleware:
    """Refuses request bodies over `max_bytes` with a JSON 413: at once when Content-Length says
    so, else as soon as the streamed bytes pass the cap (the route then fails with
    `PayloadTooLarge`, which the error handlers turn into the same 413)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                message = f"request body is {int(value)} bytes; the limit is {self.max_bytes}"
                response = error_response(413, PayloadTooLarge.code, message)
                note_error(scope, PayloadTooLarge.code)
                await response(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)
