"""A scripted HTTP(S) server on 127.0.0.1 for URL-fetch tests: never any traffic off the machine.

`routes` maps a path to a function that writes the whole response through the handler; every
request is recorded in `hits` as (path, headers). Handlers that stall wait on `release`, which
is set when the server stops, so no test waits on a clock to finish.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        local = self.server.owner
        local.hits.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = local.routes.get(self.path.split("?")[0])
        if route is None:
            send(self, 404, b"not found", "text/plain")
        else:
            route(self)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalServer


def send(
    h: Handler,
    status: int,
    body: bytes = b"",
    ctype: str | None = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> None:
    h.send_response(status)
    if ctype is not None:
        h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


class LocalServer:
    """Use as a context manager; `url(path, host)` names the server under any host name (the
    test's resolver maps that name to 127.0.0.1)."""

    def __init__(self, routes: dict[str, Route], tls: ssl.SSLContext | None = None) -> None:
        self.routes = routes
        self.hits: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.owner = self
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            args=(0.02,),
            daemon=True,  # quick shutdown()
        )

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class LoopbackOnly(httpx.AsyncBaseTransport):
    """A transport that connects only to loopback addresses (127/8, ::1) and records (then
    refuses) anything else, so a policy bug shows up as `off_machine` entries, never as traffic."""

    def __init__(self) -> None:
        self.real = httpx.AsyncHTTPTransport(trust_env=False)
        self.off_machine: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            loopback = ipaddress.ip_address(request.url.host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            self.off_machine.append(str(request.url))
            return httpx.Response(599)
        return await self.real.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()
