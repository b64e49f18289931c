"""Admission at the HTTP edge, before a body is read: plain ASGI middleware.

At most `PRELABEL_MAX_IN_FLIGHT` requests are served at once (probes and /metrics aside); one
more is refused at once with 429 `overloaded` and `Retry-After`, before its body is read or its
image decoded. The models' queues bound the work queued per model; this bounds what sits in
front of them (images being decoded, which an overloaded 2-core server otherwise accumulates
without limit, in memory and in latency).

A request with a body is not "served" until its body is in: while it arrives, the request holds
a slot of a separate budget, `PRELABEL_MAX_RECEIVING` for all callers and
`PRELABEL_MAX_RECEIVING_PER_CLIENT` per caller (API key name, else client address), under the
deadlines of app/api/bodyreader.py (the whole body within `PRELABEL_BODY_TIMEOUT_S`, no pause
over `PRELABEL_BODY_IDLE_TIMEOUT_S`; 408 past them). When its last byte arrives it moves to the
in-flight budget (429 if that is full by then). So clients that stall mid-body cannot take the
slots of requests being served, one caller cannot take all the receiving slots, and a stalled
slot comes back when its deadline passes.

While the runtime drains (after SIGTERM, see app/cli/serve.py):

- a new request, other than the probes and /metrics, is refused with 503 `shutting_down` and
  `Retry-After` (a gateway retries it on another replica); it never reaches a model;
- every response, including those of the requests still in flight, carries `Connection: close`,
  so keep-alive clients reconnect elsewhere instead of reusing a connection that is about to be
  closed under them;
- a request still running when the server gives up waiting (the grace period) is cancelled by
  uvicorn; it is answered 503 `shutting_down` instead of uvicorn's bare 500.

`Runtime.in_flight` counts the requests admitted, receiving or served (probes excluded): the
server waits for it to reach zero before it stops accepting connections.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.bodyreader import TimedReceive, expects_body
from app.api.errors import send_error
from app.errors import Overloaded, ShuttingDown
from app.runtime import Runtime

# Answered while draining: liveness and readiness (which then says 503), Label Studio's
# health check, and the metrics scrape.
PROBES = frozenset({"/livez", "/readyz", "/health", "/metrics"})


def caller_of(scope: Scope) -> str:
    """Who a request is from, for per-caller budgets: `key:<API key name>` with authentication
    on, else `addr:<client address>` (behind a gateway: the gateway's, unless uvicorn trusts its
    forwarding headers)."""
    principal = (scope.get("state") or {}).get("principal")
    if principal is not None:
        return f"key:{principal.name}"
    client = scope.get("client")
    return f"addr:{client[0] if client else '?'}"


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        s = runtime.settings
        self.max_in_flight = s.max_in_flight
        self.serving = 0  # requests whose body is in (or that have none), being answered
        self.receiving = 0  # requests whose body is still arriving
        self.receiving_by: dict[str, int] = {}  # the same, per caller (no zero entries)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rt = self.runtime
        probe = scope["path"] in PROBES
        if rt.draining and not probe:
            await self._refuse(scope, receive, send, "the server is shutting down; retry")
            return
        if probe:
            await self.app(scope, receive, self._closing(send))
            return
        if self.serving >= self.max_in_flight:
            await send_error(scope, receive, send, self._overloaded())
            return
        s = rt.settings
        caller = caller_of(scope)
        held = {"receiving": False, "serving": False}

        def release_receiving() -> None:
            if held["receiving"]:
                held["receiving"] = False
                self.receiving -= 1
                left = self.receiving_by[caller] - 1
                if left:
                    self.receiving_by[caller] = left
                else:
                    del self.receiving_by[caller]

        def serve() -> None:
            if self.serving >= self.max_in_flight:
                raise self._overloaded()
            self.serving += 1
            held["serving"] = True

        def body_ended(disconnected: bool) -> None:
            release_receiving()
            if not disconnected:
                serve()

        if expects_body(scope):
            mine = self.receiving_by.get(caller, 0)
            if self.receiving >= s.max_receiving or mine >= s.max_receiving_per_client:
                limit = "per caller" if mine >= s.max_receiving_per_client else "in all"
                n = mine if limit == "per caller" else self.receiving
                message = f"{n} requests receiving their body, the limit {limit}; retry later"
                error = Overloaded(message, headers={"Retry-After": str(s.retry_after_s)})
                await send_error(scope, receive, send, error)
                return
            self.receiving += 1
            self.receiving_by[caller] = mine + 1
            held["receiving"] = True
            receive = TimedReceive(receive, s.body_timeout_s, s.body_idle_timeout_s, body_ended)
        else:
            serve()
        started = False
        closing = self._closing(send)

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await closing(message)

        rt.in_flight += 1
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
            rt.in_flight -= 1
            release_receiving()
            if held["serving"]:
                self.serving -= 1

    def _overloaded(self) -> Overloaded:
        message = f"{self.serving} requests in flight, the limit; retry later"
        retry = {"Retry-After": str(self.runtime.settings.retry_after_s)}
        return Overloaded(message, headers=retry)

    def _closing(self, send: Send) -> Send:
        """`send` that adds `Connection: close` to a response started while draining."""
        rt = self.runtime

        async def wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and rt.draining:
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        return wrapper

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, message: str) -> None:
        headers = {"Retry-After": str(self.runtime.settings.retry_after_s), "Connection": "close"}
        await send_error(scope, receive, send, ShuttingDown(message, headers=headers))
