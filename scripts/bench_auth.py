"""Per-request cost of the auth, rate-limit, request-id and access-log layers.

Calls the ASGI app in-process (no sockets, no models needed) with GET /v1/formats, a route that
does almost nothing, so the differences between rows are the middleware. Logging goes to
os.devnull through the real formatter (text or JSON) at INFO, so the access line is built and
formatted as in production.

    .venv/bin/python scripts/bench_auth.py [--requests 3000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from app.api.access import RequestContextMiddleware
from app.config import Settings
from app.domain.apikeys import key_line, new_key
from app.logging_setup import configure_logging
from app.main import create_app

LIGHT: dict[str, Any] = {"models": ["nanodet-g"], "default_sam": "", "default_ner": ""}


def build(keys: int, rate: float, with_context: bool) -> tuple[Any, str]:
    made = [new_key() for _ in range(keys)]
    lines = [key_line(k, "user", f"u{i}") for i, k in enumerate(made)]
    app = create_app(Settings(**LIGHT, api_keys=lines, rate_limit_per_s=rate))
    if not with_context:
        # A Middleware iterates as (cls, args, kwargs), as Starlette itself reads it.
        kept = [m for m in app.user_middleware if next(iter(m)) is not RequestContextMiddleware]
        app.user_middleware = kept
    return app, (made[-1] if made else "")


async def run(app: Any, key: str, n: int) -> float:
    headers = [(b"host", b"bench")]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/v1/formats", "raw_path": b"/v1/formats", "root_path": "",
        "query_string": b"", "headers": headers, "client": ("127.0.0.1", 5000),
        "server": ("bench", 80), "state": {},
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    t0 = time.perf_counter()
    for _ in range(n):
        await app(dict(scope, state={}), receive, send)
    elapsed = time.perf_counter() - t0
    assert status in (200, 401), status
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows: list[tuple[str, Literal["text", "json"], int, float, bool, bool]] = [
        ("no keys, no request-id/access-log layer", "text", 0, 0.0, False, True),
        ("no keys (default)", "text", 0, 0.0, True, True),
        ("no keys, JSON logs", "json", 0, 0.0, True, True),
        ("10 keys, valid Bearer", "text", 10, 0.0, True, True),
        ("100 keys, valid Bearer", "text", 100, 0.0, True, True),
        ("10 keys + rate limit (never hit)", "text", 10, 1e9, True, True),
        ("10 keys, no key (401)", "text", 10, 0.0, True, False),
    ]
    with open(os.devnull, "w") as null:
        handlers = {fmt: configure_logging("info", fmt, null) for fmt in ("json", "text")}
        logging.getLogger("app.api.auth").setLevel(logging.ERROR)  # start-up notes
        apps = [build(keys, rate, ctx) for _, _, keys, rate, ctx, _ in rows]
        times: list[list[float]] = [[] for _ in rows]
        for _ in range(args.repeats):  # interleaved, so load changes hit every row alike
            for i, (_, fmt, _, _, _, send_key) in enumerate(rows):
                root = logging.getLogger()
                root.handlers[:] = [handlers[fmt]]
                app, key = apps[i]
                times[i].append(asyncio.run(run(app, key if send_key else "", args.requests)))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table = Table(
        title=f"GET /v1/formats in-process, {args.requests} requests x {args.repeats} "
        f"(interleaved), load avg after {load}"
    )
    for col in ("config", "logs", "us/request (median)", "min", "max"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for (name, fmt, *_), t in zip(rows, times, strict=True):
        table.add_row(name, fmt, f"{statistics.median(t):.1f}", f"{min(t):.1f}", f"{max(t):.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
