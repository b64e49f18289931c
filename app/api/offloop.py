"""CPU work on request bodies, kept off the event loop and bounded.

A worker thread alone is not enough: pydantic's JSON parser (jiter), pydantic validation and
`binascii` hold the GIL for the whole of one call, so the event loop, which needs the GIL to
run at all, waits for that call to end wherever it runs. What this module does about it:

- bodies over `OFF_LOOP_BYTES` are handled on a worker thread (`run`), one at a time
  (`_heavy`): a stall is then at most one call, never several stacked from concurrent requests;
- before parsing, `check_values` counts the body's commas (an upper bound on the number of JSON
  values, counted a slice at a time, releasing the GIL in between) against what the route
  can legitimately take: 27 MiB of `[0,0,0,...]` is 14.5 million values and 0.6-0.7 s of
  GIL-held parsing on this VM, refused now in ~20 ms;
- base64 is decoded a slice at a time (`b64decode`), again releasing the GIL in between.

What remains: the parse of a body the route does accept, which for the job API's largest
(1,000,000 paths, 19 MB) is ~0.4 s of GIL on this VM (see docs/operations.md, Reliability).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from collections.abc import Callable
from typing import TypeVar

from app.errors import ValidationFailed

T = TypeVar("T")

# Bodies larger than this go to a worker thread; smaller ones stay on the loop (a thread hop
# costs ~50-100 us, a 64 KiB parse less than that).
OFF_LOOP_BYTES = 64 * 1024
SLICE = 1 << 20  # bytes per GIL-holding call when counting or decoding
_heavy = threading.Lock()


async def run(size: int, fn: Callable[[], T]) -> T:
    """`fn()` on the loop when `size` is small, else on a worker thread, one at a time."""
    if size <= OFF_LOOP_BYTES:
        return fn()

    def locked() -> T:
        with _heavy:
            return fn()

    return await asyncio.to_thread(locked)


def check_values(raw: bytes | bytearray, limit: int, what: str = "body") -> None:
    """422 if `raw` holds more than `limit` commas (so more than `limit` + 1 values)."""
    count = 0
    for start in range(0, len(raw), SLICE):
        count += raw.count(b",", start, start + SLICE)
        if count > limit:
            raise ValidationFailed(
                f"{what} holds more than {limit} JSON values (commas); this route takes fewer"
            )


def b64decode(encoded: str) -> bytes:
    """Strict base64 (`validate=True`), decoded a slice at a time; `binascii.Error` on bad
    input. Slices are whole 4-character groups, so they decode exactly as the whole would."""
    if len(encoded) <= SLICE:
        return base64.b64decode(encoded, validate=True)
    if len(encoded) % 4 or encoded.find("=", 0, len(encoded) - 2) != -1:
        raise binascii.Error("base64 length is not a multiple of 4, or padding before the end")
    parts = [
        base64.b64decode(encoded[i : i + SLICE], validate=True)
        for i in range(0, len(encoded), SLICE)  # SLICE is a multiple of 4
    ]
    return b"".join(parts)
