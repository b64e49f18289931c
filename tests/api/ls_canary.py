"""Loopback canaries for the Label Studio security tests: HTTP servers on 127.0.0.1 that record
every request (method, path, headers) and answer as a scripted Label Studio would, and a way
to point the session app's Label Studio side at them for one test.

Nothing here reaches off the machine: the servers listen on loopback and the SafeFetcher used
is the real one (system resolver) with plain http allowed, so what the app would send, it
sends, and the canary logs it.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from fastapi.testclient import TestClient

from app.domain.labelstudio.projects import LsOrigins
from app.domain.urls import SafeFetcher, UrlPolicy
from tests.conftest import png_bytes, portal, runtime_of

PNG = png_bytes("astronaut.png")


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: dict[str, str]


Answer = Callable[["_Handler"], tuple[int, bytes, dict[str, str]]]


def image(h: _Handler) -> tuple[int, bytes, dict[str, str]]:
    """Any path: the astronaut PNG; `/api/token/refresh`: a fresh access token."""
    if h.path == "/api/token/refresh":
        return 200, b'{"access": "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.c2ln"}', {}
    return 200, PNG, {"Content-Type": "image/png"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        canary = self.server.canary
        canary.hits.append(
            Hit(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        )
        status, body, headers = canary.answer(self)
        self.send_response(status)
        for k, v in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    canary: Canary


class Canary:
    """A context manager; `origin` is "http://127.0.0.1:<port>"."""

    def __init__(self, answer: Answer = image) -> None:
        self.answer = answer
        self.hits: list[Hit] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.canary = self
        self.origin = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@contextmanager
def label_studio_side(
    client: TestClient,
    *,
    default_host: str | None = None,
    default_token: str | None = None,
    allowed: tuple[str, ...] = (),
    loopback_is_public: bool = False,
) -> Iterator[Any]:
    """The session app's runtime with a real SafeFetcher allowing plain http (so only the
    address rules and the trust model stand between a request and a canary) and the operator's
    Label Studio settings given here (PRELABEL_LABEL_STUDIO_URL, _TOKEN, LS_ALLOWED_ORIGINS);
    restored after. `loopback_is_public`: 127.0.0.0/8 is reachable under the URL policy (as
    PRELABEL_URL_ALLOWED_NETWORKS would make it), so a canary stands for a public host.
    Yields the runtime."""
    rt = runtime_of(client)
    saved = (rt.ls_fetcher.fetcher, rt.ls_projects.origins, rt.ls_predictor.images)
    networks = (ipaddress.ip_network("127.0.0.0/8"),) if loopback_is_public else ()
    fetcher = SafeFetcher(UrlPolicy(allow_http=True, allowed_networks=networks))
    rt.ls_fetcher.fetcher = fetcher
    rt.ls_projects.origins = LsOrigins(default_host, default_token, allowed)
    rt.ls_predictor.images = type(saved[2])(64 * 1024 * 1024, 600.0, len)  # an empty cache
    try:
        yield rt
    finally:
        portal(client).call(rt.ls_predictor.drain)
        portal(client).call(fetcher.aclose)
        rt.ls_fetcher.fetcher, rt.ls_projects.origins, rt.ls_predictor.images = saved
