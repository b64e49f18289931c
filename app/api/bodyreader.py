"""Deadlines on reading a request body, as a wrapper around the ASGI `receive`.

uvicorn reads a body only as fast as the client sends it and has no timeout of its own for it:
a client that sends its headers, `Content-Length: 1000` and 10 bytes, then nothing, holds its
request open for ever. `TimedReceive` gives every body two limits:

- the whole body must arrive within `total_s` of the request's start (`PRELABEL_BODY_TIMEOUT_S`);
- no pause between two pieces may last longer than `idle_s` (`PRELABEL_BODY_IDLE_TIMEOUT_S`).

Past either, the `receive()` the route is waiting on raises `RequestTimeout` (408 with
`Connection: close`, so uvicorn drops the connection and the bytes still owed on it), and the
request ends as any other error does: its admission slot comes back at once.

`on_end(disconnected)` is called once, when the last piece of the body arrives (or the client
goes away): the admission middleware moves the request from its "receiving" budget to the
"serving" one there (app/api/admission.py), and may refuse it then by raising.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.types import Message, Receive, Scope

from app.errors import PrelabelError


class RequestTimeout(PrelabelError):
    """The client did not send its request body in time (408)."""

    code = "request_timeout"
    status = 408
    rejection = "too_slow"


def expects_body(scope: Scope) -> bool:
    """Whether the request announces a body: a non-zero Content-Length or chunked encoding."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return bool(value.strip().lstrip(b"0"))
        if name == b"transfer-encoding":
            return True
    return False


class TimedReceive:
    """`receive` with a whole-body deadline and an idle limit (see the module docstring).

    After the body has been read (or the client disconnected) it passes calls straight through:
    the only message left to wait for is `http.disconnect`, which streaming responses await for
    as long as they stream."""

    def __init__(
        self,
        receive: Receive,
        total_s: float,
        idle_s: float,
        on_end: Callable[[bool], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._receive = receive
        self._idle_s = idle_s
        self._total_s = total_s
        self._deadline = clock() + total_s
        self._on_end = on_end
        self._clock = clock
        self.done = False

    async def __call__(self) -> Message:
        if self.done:
            return await self._receive()
        remaining = self._deadline - self._clock()
        wait = min(self._idle_s, remaining)
        try:
            async with asyncio.timeout(max(0.0, wait)):
                message = await self._receive()
        except TimeoutError:
            self._end(disconnected=True)
            which = (
                f"within {self._total_s:g} s"
                if wait == remaining
                else f"with no pause over {self._idle_s:g} s"
            )
            raise RequestTimeout(
                f"the request body did not arrive {which}", headers={"Connection": "close"}
            ) from None
        if message["type"] == "http.disconnect":
            self._end(disconnected=True)
        elif not message.get("more_body", False):
            self._end(disconnected=False)
        return message

    def _end(self, disconnected: bool) -> None:
        if not self.done:
            self.done = True
            self._on_end(disconnected)
