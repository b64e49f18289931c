"""`prelabel serve`: uvicorn, with a graceful shutdown that fits in Kubernetes' grace period.

On SIGTERM (or a first Ctrl-C), within one signal handler and `G = PRELABEL_SHUTDOWN_GRACE_S`:

1. at once: the runtime drains (`Runtime.begin_drain`): /readyz answers 503, new requests get
   503 `shutting_down`, every response says `Connection: close` (app/api/admission.py). The
   listener stays open, so a request that arrives now gets that clean 503 rather than a
   refused or reset connection;
2. on uvicorn's 0.1 s tick, once no request is in flight (`Runtime.in_flight`), or at the latest
   at `G - reserve`, uvicorn's own shutdown starts: it closes the listener and the idle
   connections, gives stragglers `CLOSE_S`, cancels what still runs (answered 503 by the
   admission middleware), then runs the lifespan shutdown (app/main.py): the job manager stops
   (finished items are checkpointed), then `Runtime.stop()` drains the batchers' queues and
   closes the sessions, bounded by the runtime's drain deadline (see `budget`);
3. the process exits 0. A watchdog thread, armed by the signal, ends the process with exit
   code 1 at `G` whatever is stuck (a hung model, a hung finaliser), so the exit always comes
   before Kubernetes' SIGKILL (terminationGracePeriodSeconds, 30 s by default, > G = 25 s).

Reading limits (what a slow or stalled client may hold): headers within
`PRELABEL_HEADER_TIMEOUT_S` and `PRELABEL_MAX_HEADER_BYTES` (the protocol class of
app/cli/protocol.py), bodies within `PRELABEL_BODY_TIMEOUT_S` with no pause over
`PRELABEL_BODY_IDLE_TIMEOUT_S` (app/api/bodyreader.py), idle keep-alive connections closed after
uvicorn's `timeout_keep_alive` (5 s).

A second signal skips the wait for in-flight requests (uvicorn's handling from then on; a
second Ctrl-C there forces the exit). Signal handling is uvicorn 0.54's `Server.handle_exit`
(installed with `signal.signal` for SIGINT and SIGTERM) and its `on_tick` loop; the first signal
is not passed on to uvicorn, which would otherwise stop the server at once and, once done,
re-raise the signal and exit with -15 instead of 0.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

import uvicorn

from app.cli.protocol import header_limited
from app.config import Settings
from app.runtime import Runtime

log = logging.getLogger(__name__)

CLOSE_S = 1  # after the listener closes: time for stragglers before uvicorn cancels them
KEEP_ALIVE_S = 5  # idle keep-alive connections (uvicorn's default, stated)
JOIN_S = 1.0  # Batcher.stop joins a worker for up to 1 s past its drain deadline (a hung model)


def budget(grace_s: float) -> tuple[float, float]:
    """(HTTP wait, drain deadline), in seconds after the signal, for a grace period `G`:
    `G - exit - JOIN_S` is when the batchers must have drained (`exit`: the interpreter's
    teardown, measured at 0.3-1.7 s on the busy 2-core machine), and in-flight requests get what
    is left before it, less the runtime's stop (`stop`: jobs, queued bulk batches) and
    `CLOSE_S`. G = 25 s: requests in flight get 14 s, the batchers drain by 20 s."""
    exit_s = min(4.0, 0.25 * grace_s)
    stop_s = min(5.0, 0.2 * grace_s)
    drain_by = max(0.0, grace_s - exit_s - JOIN_S)
    return max(0.0, drain_by - stop_s - CLOSE_S), drain_by


class DrainingServer(uvicorn.Server):
    """`uvicorn.Server` whose first exit signal drains the runtime before stopping."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime, grace_s: float) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.grace_s = grace_s
        self.http_wait_s, self.drain_by = budget(grace_s)
        self.drain_t0: float | None = None
        self._signal = ""
        self._announced = False
        self._armed = threading.Event()
        threading.Thread(target=self._watchdog, name="shutdown-watchdog", daemon=True).start()

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        # The models, sessions and tokenizers are loaded (the lifespan ran): move the ~300,000
        # objects they left to the permanent generation, so no full collection scans them again.
        # A full collection on a loaded server took ~180 ms here, all of it a stall of the event
        # loop; after the freeze, a few ms (tests/api/test_loop_stalls.py does the same).
        gc.collect()
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_t0 is not None:
            super().handle_exit(sig, frame)  # a second signal: stop waiting
            return
        # A signal handler: set flags only (logging happens on the next tick).
        self.drain_t0 = time.monotonic()
        self._signal = signal.Signals(sig).name
        self.runtime.begin_drain(self.drain_t0 + self.drain_by)
        self._armed.set()

    async def on_tick(self, counter: int) -> bool:
        if self.drain_t0 is not None and not self.should_exit:
            self._drain_tick(time.monotonic() - self.drain_t0)
        return await super().on_tick(counter)

    def _drain_tick(self, elapsed: float) -> None:
        busy = self.runtime.in_flight
        if not self._announced:
            self._announced = True
            log.info(
                "%s: draining (readiness 503, new requests 503 shutting_down); %d requests in "
                "flight; exit within %.0f s",
                self._signal,
                busy,
                self.grace_s,
            )
        if busy == 0:
            log.info("drained: no request in flight %.2f s after %s", elapsed, self._signal)
            self.should_exit = True
        elif elapsed >= self.http_wait_s:
            log.warning(
                "%d requests still in flight %.1f s after %s: cancelling them (503)",
                busy,
                elapsed,
                self._signal,
            )
            self.should_exit = True

    def _watchdog(self) -> None:
        self._armed.wait()
        assert self.drain_t0 is not None
        time.sleep(max(0.0, self.drain_t0 + self.grace_s - time.monotonic()))
        log.error("shutdown exceeded the %.0f s grace period: exiting now", self.grace_s)
        logging.shutdown()
        os._exit(1)


def serve(settings: Settings, host: str, port: int, **uvicorn_options: Any) -> int:
    """Serve until a signal; 0 after a clean drain (the watchdog exits 1 on its own)."""
    from app.main import create_app

    runtime = Runtime(settings)
    config = uvicorn.Config(
        create_app(settings, runtime),
        host=host,
        port=port,
        timeout_graceful_shutdown=CLOSE_S,
        http=header_limited(settings.header_timeout_s, settings.max_header_bytes),
        timeout_keep_alive=KEEP_ALIVE_S,
        **uvicorn_options,
    )
    server = DrainingServer(config, runtime, settings.shutdown_grace_s)
    server.run()
    if server.drain_t0 is not None:
        log.info("shutdown complete in %.2f s", time.monotonic() - server.drain_t0)
    return 0
