"""Use case: propose boxes for an image."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from app.domain.boxes import Detection, select
from app.domain.images import ImageLimits, decode_image
from app.errors import ValidationFailed
from app.inference.batcher import Lane
from app.inference.detectors import DetectItem
from app.inference.registry import ModelRegistry


@dataclass(frozen=True)
class DetectParams:
    model: str
    score_threshold: float = 0.35
    iou_threshold: float = 0.5
    max_detections: int = 100
    classes: frozenset[str] | None = None
    lane: Lane = Lane.INTERACTIVE


@dataclass(frozen=True)
class DetectResult:
    """Boxes in original-image pixels (XYXY), best first; timings in milliseconds."""

    model: str
    version: str
    width: int
    height: int
    detections: list[Detection]
    timings: dict[str, float]


class DetectionService:
    def __init__(self, registry: ModelRegistry, limits: ImageLimits, timeout_s: float) -> None:
        self.registry = registry
        self.limits = limits
        self.timeout_s = timeout_s

    async def detect(self, data: bytes, p: DetectParams) -> DetectResult:
        model = self.registry.detector(p.model)
        if p.classes is not None:
            unknown = p.classes - set(model.adapter.labels)
            if unknown:
                raise ValidationFailed(f"classes not known to {p.model}: {sorted(unknown)}")
        t0 = time.perf_counter()

        def prepare() -> tuple[DetectItem, int, int]:
            image = decode_image(data, self.limits)
            h, w = image.shape[:2]
            return model.adapter.preprocess(image, p.score_threshold), w, h

        item, width, height = await asyncio.to_thread(prepare)
        t1 = time.perf_counter()
        cands = await model.batcher.submit(item, p.lane, self.timeout_s)
        t2 = time.perf_counter()
        dets = select(
            cands,
            model.adapter.labels,
            p.score_threshold,
            p.iou_threshold,
            p.max_detections,
            p.classes,
        )
        t3 = time.perf_counter()
        return DetectResult(
            p.model,
            model.spec.version,
            width,
            height,
            dets,
            {
                "decode_ms": _ms(t1 - t0),
                "inference_ms": _ms(t2 - t1),
                "postprocess_ms": _ms(t3 - t2),
                "total_ms": _ms(t3 - t0),
            },
        )


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)
