"""Admission at the HTTP edge, before a body is read: plain ASGI middleware.

At most `PRELABEL_MAX_IN_FLIGHT` requests are served at once (probes and /metrics aside); one
more is refused at once with 429 `overloaded` and `Retry-After`, before its body is read or its
image decoded. The models' queues bound the work queued per model; this bounds what sits in
front of them (bodies being received, images being decoded, which an overloaded 2-core server
otherwise accumulates without limit, in memory and in latency).

While the runtime drains (after SIGTERM, see app/cli/serve.py):

- a new request, other than the probes and /metrics, is refused with 503 `shutting_down` and
  `Retry-After` (a gateway retries it on another replica); it never reaches a model;
- every response, including those of the requests still in flight, carries `Connection: close`,
  so keep-alive clients reconnect elsewhere instead of reusing a connection that is about to be
  closed under them;
- a request still running when the server gives up waiting (the grace period) is cancelled by
  uvicorn; it is answered 503 `shutting_down` instead of uvicorn's bare 500.

`Runtime.in_flight` counts the requests being served (probes excluded): the server waits for it
to reach zero before it stops accepting connections.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import send_error
from app.errors import Overloaded, ShuttingDown
from app.runtime import Runtime

# Answered while draining: liveness and readiness (which then says 503), Label Studio's
# health check, and the metrics scrape.
PROBES = frozenset({"/livez", "/readyz", "/health", "/metrics"})


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.max_in_flight = runtime.settings.max_in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rt = self.runtime
        probe = scope["path"] in PROBES
        if rt.draining and not probe:
            await self._refuse(scope, receive, send, "the server is shutting down; retry")
            return
        if not probe and rt.in_flight >= self.max_in_flight:
            message = f"{rt.in_flight} requests in flight, the limit; retry later"
            retry = {"Retry-After": str(rt.settings.retry_after_s)}
            await send_error(scope, receive, send, Overloaded(message, headers=retry))
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if rt.draining:
                    headers = [*message.get("headers", ()), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        rt.in_flight += 0 if probe else 1
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            if not (rt.draining and not started):
                raise
            # uvicorn cancels what is still running when its graceful timeout ends, and then
            # answers a bare 500; a clean 503 says what happened. The task ends right here, so
            # the cancellation is not swallowed from anything that would still run.
            message = "the server shut down before this request finished; retry"
            await self._refuse(scope, receive, send, message)
        finally:
            rt.in_flight -= 0 if probe else 1

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, message: str) -> None:
        headers = {"Retry-After": str(self.runtime.settings.retry_after_s), "Connection": "close"}
        await send_error(scope, receive, send, ShuttingDown(message, headers=headers))
