"""Logging: text for a terminal or JSON lines for log collectors, every record with the request id.

`configure_logging` replaces the root logger's handlers with one stream handler (uvicorn is run
with `log_config=None`, so its loggers propagate here too). The request id lives in a
contextvar that `RequestContextMiddleware` sets for the duration of each request; a filter on
the handler copies it onto every record, so a line logged anywhere while serving a request
(route, domain code, a thread started with `asyncio.to_thread`, which copies the context)
carries it. Batcher worker threads run outside any request's context and log without one.

JSON lines have `time` (ISO 8601, UTC), `level`, `logger`, `message`, `request_id` when there
is one, any `extra=` fields (the access log's `method`, `route`, `status`, `duration_ms`,
`principal`, ...) and `exc_info` for tracebacks. Nothing here redacts: callers never pass
bodies, keys or tokens to a logger (tests/api/test_observability.py checks the request paths).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import IO, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("prelabel_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None) on every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)


class _JsonFormatter(JsonFormatter):
    def add_fields(
        self,
        log_data: dict[str, object],
        record: logging.LogRecord,
        message_dict: dict[str, object],
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if log_data.get("request_id") is None:
            log_data.pop("request_id", None)
        rest = dict(log_data)  # time first, for people reading the raw lines
        log_data.clear()
        log_data["time"] = rest.pop("time", None)
        log_data.update(rest)


def make_formatter(fmt: Literal["text", "json"]) -> logging.Formatter:
    if fmt == "json":
        return _JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            # uvicorn's records carry an ANSI-coloured copy of the message: not for JSON.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    return _TextFormatter(TEXT_FORMAT)


def configure_logging(
    level: str, fmt: Literal["text", "json"], stream: IO[str] | None = None
) -> logging.Handler:
    """Install the one root handler (returned, so tests can remove it again)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
