"""Optional per-key rate limit: a token bucket per principal, as plain ASGI middleware.

`PRELABEL_RATE_LIMIT_PER_S` tokens are added per second up to `PRELABEL_RATE_LIMIT_BURST`
(default: one second's worth, at least 1); each request takes one, and a request that finds
less than one token is answered 429 `rate_limited` with `Retry-After` = the seconds until the
bucket holds a token again (rounded up). Off when the rate is 0 (the default).

Buckets are per API-key name when authentication is on (two keys of one name share one), and
per client address when it is off; behind a gateway that address is the gateway's unless
uvicorn is told to trust its forwarding headers, so per-address limiting is only as good as
that. A request counts once whatever it carries (a /predict of 100 tasks is one token): this
bounds request rates, while the batcher's bounded queues bound the work. Probes, /metrics and
the docs are not limited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.auth import ALWAYS_OPEN, DOCS, route_path
from app.api.errors import send_error
from app.config import Settings
from app.errors import RateLimited

EXEMPT = ALWAYS_OPEN | DOCS | {"/health", "/metrics"}


class TokenBuckets:
    """One token bucket per key; `take(key)` -> 0.0 when a token was taken, else the seconds
    until one will be there. At most `max_keys` buckets are kept (least recently used go first;
    a forgotten key starts again with a full bucket). Event-loop only, not thread-safe."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = float(burst)
        self.clock = clock  # public so tests can drive it
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at), LRU order

    def take(self, key: str) -> float:
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            del self._buckets[next(iter(self._buckets))]
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimitMiddleware:
    """Runs inside AuthMiddleware, so the principal is known."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets) -> None:
        self.app = app
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and route_path(scope) not in EXEMPT:
            principal = (scope.get("state") or {}).get("principal")
            client = scope.get("client")
            key = f"key:{principal.name}" if principal else f"addr:{client[0] if client else '?'}"
            wait = self.buckets.take(key)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                rate = f"{self.buckets.rate:g}"
                error = RateLimited(
                    f"over the rate limit of {rate} requests/s; retry in {retry} s",
                    headers={"Retry-After": str(retry)},
                )
                await send_error(scope, receive, send, error)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings, clock: Callable[[], float] | None = None) -> None:
    """Add the middleware when `PRELABEL_RATE_LIMIT_PER_S` > 0."""
    rate = settings.rate_limit_per_s
    if rate <= 0:
        return
    burst = settings.rate_limit_burst or max(1, math.ceil(rate))
    buckets = TokenBuckets(rate, burst, clock or time.monotonic)
    app.state.rate_limit = buckets
    app.add_middleware(RateLimitMiddleware, buckets=buckets)
