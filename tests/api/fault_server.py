"""`prelabel serve` with a fault hook in the detector, for the shutdown tests (run as a script).

The real NanoDet runs every batch, except that a batch holding an item whose score threshold is

- `HOLD` waits on a gate that SIGUSR1 opens (requests held in flight, released by the test),
- `HANG` waits forever (a model that never returns; only the process exit ends it).

Before waiting it prints `FAULT hold N` / `FAULT hang N` (N = items in the batch) on stdout, so
the test can order its steps by these lines. Usage: `fault_server.py PORT`; every other setting
comes from the environment, as for `prelabel serve`.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from app.cli.main import main
from app.inference.detectors import Candidates, DetectItem, Detector

HOLD, HANG = 0.0123, 0.0321


def install() -> None:
    gate, never = threading.Event(), threading.Event()
    real = Detector.run_batch

    def run_batch(self: Detector, items: Sequence[DetectItem]) -> list[Candidates]:
        scores = {it.min_score for it in items}
        for value, name, event in ((HOLD, "hold", gate), (HANG, "hang", never)):
            if value in scores:
                print(f"FAULT {name} {len(items)}", flush=True)
                event.wait()
        return real(self, items)

    def release(sig: int, frame: FrameType | None) -> None:
        gate.set()

    Detector.run_batch = run_batch  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, release)


if __name__ == "__main__":
    install()
    sys.exit(main(["serve", "--host", "127.0.0.1", "--port", sys.argv[1]]))
