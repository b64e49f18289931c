"""Use case: keypoint instances (people, for MoveNet) in an image, in the pixels of the image
as stored (EXIF applied)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from app.domain.images import ImageLimits, decode_image
from app.geometry import BoxXYXY
from app.inference.batcher import Lane
from app.inference.keypoints import KeypointItem
from app.inference.registry import ModelRegistry


@dataclass(frozen=True)
class Keypoint:
    name: str
    x: float
    y: float
    score: float


@dataclass(frozen=True)
class PoseInstance:
    """`box` [x1, y1, x2, y2] pixels; `keypoints` in the model's order (all of them, each
    with its own score: a caller decides which are visible)."""

    label: str
    box: BoxXYXY
    score: float
    keypoints: tuple[Keypoint, ...]


@dataclass(frozen=True)
class KeypointsResult:
    model: str
    version: str
    width: int
    height: int
    instances: list[PoseInstance]
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]  # 1-based index pairs into keypoint_names
    timings: dict[str, float]


class KeypointService:
    def __init__(self, registry: ModelRegistry, limits: ImageLimits, timeout_s: float) -> None:
        self.registry = registry
        self.limits = limits
        self.timeout_s = timeout_s

    async def detect(
        self,
        data: bytes,
        model: str,
        min_score: float = 0.2,
        max_instances: int = 6,
        lane: Lane = Lane.INTERACTIVE,
    ) -> KeypointsResult:
        m = self.registry.keypoints(model)
        t0 = time.perf_counter()

        def prepare() -> tuple[KeypointItem, int, int]:
            image = decode_image(data, self.limits)
            h, w = image.shape[:2]
            return m.adapter.preprocess(image), w, h

        item, width, height = await asyncio.to_thread(prepare)
        t1 = time.perf_counter()
        rows = await m.batcher.submit(item, lane, self.timeout_s)
        t2 = time.perf_counter()
        label = m.spec.labels[0] if m.spec.labels else "object"
        names = m.adapter.names
        instances = [
            PoseInstance(
                label,
                tuple(round(v, 2) for v in inst.box),  # type: ignore[arg-type]
                round(inst.score, 4),
                tuple(
                    Keypoint(n, round(float(x), 2), round(float(y), 2), round(float(s), 4))
                    for n, (x, y, s) in zip(names, inst.keypoints.tolist(), strict=True)
                ),
            )
            for inst in m.adapter.decode(rows, item, width, height, min_score)[:max_instances]
        ]
        t3 = time.perf_counter()
        return KeypointsResult(
            model,
            m.spec.version,
            width,
            height,
            instances,
            names,
            m.spec.skeleton,
            {
                "decode_ms": _ms(t1 - t0),
                "inference_ms": _ms(t2 - t1),
                "postprocess_ms": _ms(t3 - t2),
                "total_ms": _ms(t3 - t0),
            },
        )


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)
