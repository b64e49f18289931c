"""Benchmark: OCR, keypoints and tokens, per image (or text) in process and over HTTP.

Run from the project root with the project's venv: `.venv/bin/python scripts/bench_kinds.py`
(`--n N` requests each, default 20). One request at a time (latency, not throughput).

In process: the project's own services (`Runtime` with `ppocr-v4`, `movenet-multipose` and
`en-core-web-sm` loaded), the image bytes in memory, `OcrService.read`,
`KeypointService.detect` and `TokenService.tag` awaited one after another (decode, batcher,
model, post-processing: everything but HTTP). Over HTTP: `prelabel serve` on a free loopback
port with the same models (scripts/benchlib.py, the harness), multipart uploads (JSON for
tokens) with httpx, one in flight. Inputs: tests/data/ocr/scenetext01.jpg (800x600 sign, 5
lines), scikit-image's astronaut (512x512, one person), a 9-word English sentence. Each series
has 3 untimed warm-up calls; p50 and p99 of wall time in ms. The machine's other jobs add noise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import skimage

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from benchlib import default_prelabel, percentiles, serve

from app.config import Settings
from app.runtime import Runtime

ROOT = Path(__file__).parent.parent
SIGN = (ROOT / "tests/data/ocr/scenetext01.jpg").read_bytes()
ASTRONAUT = (Path(skimage.__file__).parent / "data/astronaut.png").read_bytes()
TEXT = "The geese were flying south over the quiet lake."
MODELS = ["ppocr-v4", "movenet-multipose", "en-core-web-sm"]


def row(name: str, where: str, ms: list[float]) -> None:
    p = percentiles(ms)
    print(f"| {name} | {where} | {p['p50']:.1f} | {p['p99']:.1f} | {len(ms)} |")


async def in_process(n: int) -> None:
    rt = Runtime(Settings(models=MODELS, default_detector="", default_sam=""))
    await rt.start()
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "ocr (sign, 800x600)": lambda: rt.ocr.read(SIGN, "ppocr-v4"),
        "keypoints (astronaut, 512x512)": lambda: rt.keypoints.detect(
            ASTRONAUT, "movenet-multipose"
        ),
        "tokens (1 sentence)": lambda: rt.tokens.tag([TEXT], "en-core-web-sm"),
    }
    for name, call in calls.items():
        for _ in range(3):
            await call()
        ms = []
        for _ in range(n):
            t0 = time.perf_counter()
            await call()
            ms.append((time.perf_counter() - t0) * 1000)
        row(name, "in process", ms)
    await rt.stop()


def over_http(n: int) -> None:
    env = {
        "PRELABEL_MODELS": '["ppocr-v4", "movenet-multipose", "en-core-web-sm"]',
        "PRELABEL_DEFAULT_DETECTOR": "",
        "PRELABEL_DEFAULT_SAM": "",
    }
    with (
        tempfile.TemporaryDirectory() as d,
        serve(default_prelabel(), env, Path(d)) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as c,
    ):
        calls: dict[str, Callable[[], httpx.Response]] = {
            "ocr (sign, 800x600)": lambda: c.post("/v1/ocr", files={"file": ("s.jpg", SIGN)}),
            "keypoints (astronaut, 512x512)": lambda: c.post(
                "/v1/keypoints", files={"file": ("a.png", ASTRONAUT)}
            ),
            "tokens (1 sentence)": lambda: c.post("/v1/tokens", json={"texts": [TEXT]}),
        }
        for name, call in calls.items():
            for _ in range(3):
                call().raise_for_status()
            ms = []
            for _ in range(n):
                t0 = time.perf_counter()
                call().raise_for_status()
                ms.append((time.perf_counter() - t0) * 1000)
            row(name, "HTTP", ms)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    print("| route | where | p50 ms | p99 ms | n |\n|---|---|---|---|---|")
    asyncio.run(in_process(args.n))
    over_http(args.n)


if __name__ == "__main__":
    main()
