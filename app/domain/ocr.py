"""Use case: text lines in an image (PP-OCR), in the pixels of the image as stored.

The steps and their constants are RapidOCR's (which PaddleOCR's own pipeline also uses), so
results match the reference package: an image whose longer side is over 2000 px is scaled down
(and one whose shorter side is under 30 px up), both sides then multiples of 32; an image at
most 30 px tall or more than 8 times as wide as tall is padded black above and below; text
quads are found (one detector forward), put in reading order, cropped upright and read
together (one recogniser item per image, so concurrent requests never change each other's
results); lines read with a score under `min_score` are dropped, and the quads are mapped back
to the original pixels.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import cv2
import numpy as np

from app.domain.images import ImageLimits, decode_image
from app.inference.batcher import Lane
from app.inference.ocr import F32, U8, crop_line, reading_order, word_spans
from app.inference.registry import ModelRegistry

MAX_SIDE, MIN_SIDE, MIN_HEIGHT, MAX_RATIO = 2000, 30, 30, 8


@dataclass(frozen=True)
class TextLine:
    """`polygon`: 4 [x, y] points (top-left, top-right, bottom-right, bottom-left of the text
    region in the image, whichever way the text runs) in original-image pixels; `score`: the
    recogniser's mean character probability; `box_score`: the detector's; `rotated`: the
    direction classifier turned the line 180 degrees before reading it."""

    polygon: tuple[tuple[float, float], ...]
    text: str
    score: float
    box_score: float
    rotated: bool
    # With `words`: (word, its 4 points like `polygon`) from the recogniser's alignment.
    words: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] | None = None


@dataclass(frozen=True)
class OcrResult:
    model: str
    version: str
    width: int
    height: int
    lines: list[TextLine]
    timings: dict[str, float]


@dataclass(frozen=True)
class _Prepared:
    image: U8  # BGR, scaled and padded
    scale_x: float  # original pixels per prepared pixel
    scale_y: float
    pad_top: int
    width: int  # the original's
    height: int


def _resize32(img: U8, ratio: float) -> tuple[U8, float, float]:
    h, w = img.shape[:2]
    rh, rw = round(int(h * ratio) / 32) * 32, round(int(w * ratio) / 32) * 32
    rh, rw = max(rh, 32), max(rw, 32)
    return np.asarray(cv2.resize(img, (rw, rh)), np.uint8), h / rh, w / rw


def prepare(rgb: U8) -> _Prepared:
    """RGB image -> what the detector sees (see the module docstring)."""
    h, w = rgb.shape[:2]
    img: U8 = np.ascontiguousarray(rgb[:, :, ::-1])
    sy = sx = 1.0
    if max(h, w) > MAX_SIDE:
        img, sy, sx = _resize32(img, MAX_SIDE / max(h, w))
    ih, iw = img.shape[:2]
    if min(ih, iw) < MIN_SIDE:
        img, sy2, sx2 = _resize32(img, MIN_SIDE / min(ih, iw))
        sy, sx = sy * sy2, sx * sx2
    ih, iw = img.shape[:2]
    pad = 0
    if ih <= MIN_HEIGHT or iw / ih > MAX_RATIO:
        pad = int(abs(max(int(iw / MAX_RATIO), MIN_HEIGHT) * 2 - ih) / 2)
        border = cv2.copyMakeBorder(img, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        img = np.asarray(border, np.uint8)
    return _Prepared(img, sx, sy, pad, w, h)


class OcrService:
    def __init__(self, registry: ModelRegistry, limits: ImageLimits, timeout_s: float) -> None:
        self.registry = registry
        self.limits = limits
        self.timeout_s = timeout_s

    async def read(
        self,
        data: bytes,
        model: str,
        min_score: float = 0.5,
        lane: Lane = Lane.INTERACTIVE,
        words: bool = False,
    ) -> OcrResult:
        m = self.registry.ocr(model)
        t0 = time.perf_counter()

        def decode() -> tuple[_Prepared, F32 | None]:
            p = prepare(decode_image(data, self.limits))
            return p, m.detector.preprocess(p.image)

        prep, tensor = await asyncio.to_thread(decode)
        t1 = time.perf_counter()
        lines: list[TextLine] = []
        if tensor is not None:
            prob = await m.detect.submit(tensor, lane, self.timeout_s)
            ph, pw = prep.image.shape[:2]
            found = m.detector.boxes(prob, ph, pw)
            order = reading_order([q for q, _ in found])
            found = [found[i] for i in order]
            t2 = time.perf_counter()
            crops = [crop_line(prep.image, q) for q, _ in found]
            reads = await m.read.submit(crops, lane, self.timeout_s) if crops else []
            for (quad, det_score), r in zip(found, reads, strict=True):
                if r.score < min_score:
                    continue
                found_words = None
                if words:
                    found_words = tuple(
                        (word, _to_original(np.array(pts), prep))
                        for word, pts in word_spans(r, quad)
                    )
                polygon = _to_original(quad, prep)
                lines.append(TextLine(polygon, r.text, r.score, det_score, r.rotated, found_words))
        else:
            t2 = t1
        t3 = time.perf_counter()
        return OcrResult(
            model,
            m.spec.version,
            prep.width,
            prep.height,
            lines,
            {
                "decode_ms": _ms(t1 - t0),
                "detect_ms": _ms(t2 - t1),
                "recognise_ms": _ms(t3 - t2),
                "total_ms": _ms(t3 - t0),
            },
        )


def _to_original(quad: np.ndarray, p: _Prepared) -> tuple[tuple[float, float], ...]:
    pts = quad.astype(np.float64).copy()
    pts[:, 1] -= p.pad_top
    pts[:, 0] *= p.scale_x
    pts[:, 1] *= p.scale_y
    pts[:, 0] = np.clip(pts[:, 0], 0, p.width)
    pts[:, 1] = np.clip(pts[:, 1], 0, p.height)
    return tuple((round(float(x), 2), round(float(y), 2)) for x, y in pts)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)
