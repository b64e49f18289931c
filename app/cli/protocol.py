"""uvicorn's HTTP protocol (httptools) with a deadline and a size cap on request headers.

uvicorn 0.54 times out only idle keep-alive connections (`timeout_keep_alive`, armed after a
response): a connection that opens and sends nothing, or sends its headers a byte at a time,
is kept for ever, and llhttp puts no limit on the size of the headers. This protocol class adds
both, per request:

- the request line and headers must be complete within `PRELABEL_HEADER_TIMEOUT_S` of the
  connection's start or of the previous response's end; past it the server answers 408 and
  closes the connection (nothing of the request has reached the app, so nothing else to undo),
  or, when not a byte of a request has come, just closes it (an idle connection);
- more than `PRELABEL_MAX_HEADER_BYTES` received before the headers are complete: 431, closed.

Bodies have their own deadlines, in the app (app/api/bodyreader.py), where they can be answered
with the app's JSON errors and counted against the admission budgets.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _raw_response(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def header_limited(timeout_s: float, max_bytes: int) -> type[HttpToolsProtocol]:
    """An `HttpToolsProtocol` subclass with these limits, for `uvicorn.Config(http=...)`."""

    class HeaderLimitedProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            waiting = self._header_timer is not None
            if waiting:
                self._header_bytes += len(data)
            super().data_received(data)
            # Still no complete headers after this piece, and too many bytes for them.
            if waiting and self._header_timer is not None and self._header_bytes > max_bytes:
                message = f"request line and headers over {max_bytes} bytes"
                self._give_up(431, "Request Header Fields Too Large", "headers_too_large", message)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)  # the next request's headers are already in
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(timeout_s, self._timed_out)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _timed_out(self) -> None:
            self._header_timer = None
            if self._header_bytes == 0:
                # Nothing of a request yet (an idle keep-alive connection): close without a
                # word, as uvicorn's keep-alive timeout does; a 408 here would be read as the
                # answer to the client's next request.
                if not self.transport.is_closing():
                    self.transport.close()
                return
            message = f"request headers did not arrive within {timeout_s:g} s"
            self._give_up(408, "Request Timeout", "request_timeout", message)

        def _give_up(self, status: int, reason: str, code: str, message: str) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(_raw_response(status, reason, code, message))
                self.transport.close()

    return HeaderLimitedProtocol
