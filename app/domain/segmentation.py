"""Use case: SAM embeddings (cached per image) and masks from clicks and boxes."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass

from app.domain import masks
from app.domain.formats.records import ObjectRecord
from app.domain.images import ImageLimits, decode_image
from app.domain.prompts import Prompt, to_arrays
from app.errors import NotFound, ValidationFailed
from app.geometry import BoxXYWH
from app.inference.batcher import Lane
from app.inference.cache import TTLCache
from app.inference.metrics import Metrics
from app.inference.preprocess import F32
from app.inference.registry import LoadedSam, ModelRegistry
from app.inference.sam import DecodeItem, Embedding, EncodeItem


@dataclass(frozen=True)
class EmbedResult:
    embedding_id: str
    model: str
    width: int
    height: int
    cached: bool
    timings: dict[str, float]


@dataclass(frozen=True)
class MaskResult:
    """One mask: COCO RLE, bbox [x, y, w, h] pixels, area, predicted IoU, refinement id."""

    mask_id: str
    rle: dict[str, object]
    bbox: BoxXYWH
    area: int
    predicted_iou: float
    polygons: list[list[float]] | None

    def as_record(self, label: str) -> ObjectRecord:
        """This mask as a format record: box from the bbox (XYXY), score = predicted IoU."""
        x, y, w, h = self.bbox
        return ObjectRecord(label, (x, y, x + w, y + h), self.predicted_iou, masks.decode(self.rle))


@dataclass(frozen=True)
class SegmentResult:
    embedding_id: str
    model: str
    width: int
    height: int
    masks: list[MaskResult]
    encoder_cached: bool
    timings: dict[str, float]


@dataclass(frozen=True)
class LowResMask:
    """A decoded mask's low-res logits, kept so a later prompt can refine it."""

    cache_key: str  # of the embedding it was decoded from (scope included)
    logits: F32  # [1,1,256,256]


HASH_OFF_LOOP_BYTES = 1 << 20  # sha256 runs ~0.5 GB/s here: 40 ms for 20 MiB, off the loop


class SegmentationService:
    """Embeddings are cached by (model, sha256 of the image bytes): a hit never decodes the
    image nor runs the encoder, and concurrent misses for one image run the encoder once.

    `cached` (and `encoder_cached`) therefore tells a caller whether anyone embedded the same
    bytes within the TTL. Where callers must not learn that about each other (tenants), give
    each a `scope` (the API key name, with `PRELABEL_EMBEDDING_CACHE_PER_KEY`): entries are then
    keyed by (scope, embedding id), so a scope neither hits nor reaches another's embeddings
    and masks, even with the id in hand; the same image is embedded once per scope."""

    def __init__(
        self,
        registry: ModelRegistry,
        metrics: Metrics,
        limits: ImageLimits,
        timeout_s: float,
        max_points: int,
        embeddings: TTLCache[Embedding],
        low_res: TTLCache[LowResMask],
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.limits = limits
        self.timeout_s = timeout_s
        self.max_points = max_points
        self.embeddings = embeddings
        self.low_res = low_res

    @staticmethod
    def embedding_id(model: str, data: bytes) -> str:
        return f"{model}.{hashlib.sha256(data).hexdigest()[:40]}"

    async def embed(
        self, data: bytes, model: str, lane: Lane = Lane.INTERACTIVE, scope: str = ""
    ) -> EmbedResult:
        t0 = time.perf_counter()
        eid, _, emb, hit = await self._embedding(self.registry.sam(model), data, lane, scope)
        timings = {"total_ms": round((time.perf_counter() - t0) * 1000, 2)}
        return EmbedResult(eid, model, emb.width, emb.height, hit, timings)

    async def _embedding(
        self, sam: LoadedSam, data: bytes, lane: Lane, scope: str
    ) -> tuple[str, str, Embedding, bool]:
        """(embedding id, cache key, embedding, hit)."""
        model = sam.spec.name
        if len(data) > HASH_OFF_LOOP_BYTES:
            eid = await asyncio.to_thread(self.embedding_id, model, data)
        else:
            eid = self.embedding_id(model, data)
        key = _cache_key(eid, scope)
        emb, hit = await self.embeddings.get_or_compute(key, lambda: self._encode(sam, data, lane))
        (self.metrics.cache_hits if hit else self.metrics.cache_misses).labels(model).inc()
        return eid, key, emb, hit

    async def _encode(self, sam: LoadedSam, data: bytes, lane: Lane) -> Embedding:
        def prepare() -> EncodeItem:
            return sam.encoder.preprocess(decode_image(data, self.limits))

        item = await asyncio.to_thread(prepare)
        emb = await sam.encode.submit(item, lane, self.timeout_s)
        self.metrics.encoder_runs.labels(sam.spec.name).inc()
        return emb

    def _cached(self, key: str, embedding_id: str) -> Embedding:
        emb = self.embeddings.get(key)
        if emb is None:
            raise NotFound(
                f"embedding {embedding_id!r} is unknown or expired; send the image again"
            )
        # Not counted as a cache hit: hits and misses count image lookups, where a miss costs
        # an encoder run, so their ratio says how often images are re-sent.
        return emb

    async def segment(
        self,
        prompt: Prompt,
        model: str,
        *,
        embedding_id: str | None = None,
        image: bytes | None = None,
        mask_id: str | None = None,
        polygons: bool = False,
        lane: Lane = Lane.INTERACTIVE,
        scope: str = "",
    ) -> SegmentResult:
        """Decode one mask for `prompt` on a cached embedding (or on `image`, embedding it first).
        `mask_id` refines: the earlier mask's low-res logits go in as `mask_input`. `scope`: see
        the class docstring."""
        t0 = time.perf_counter()
        if (embedding_id is None) == (image is None):
            raise ValidationFailed("give exactly one of embedding_id or an image")
        if embedding_id is not None:
            model = embedding_id.split(".", 1)[0]
            sam = self.registry.sam(model)
            key = _cache_key(embedding_id, scope)
            emb, cached = self._cached(key, embedding_id), True
        else:
            assert image is not None
            sam = self.registry.sam(model)
            embedding_id, key, emb, cached = await self._embedding(sam, image, lane, scope)
        mask_input = None
        if mask_id is not None:
            prev = self.low_res.get(mask_id)
            if prev is None or prev.cache_key != key:
                raise NotFound(f"mask {mask_id!r} is unknown, expired, or of another image")
            mask_input = prev.logits
        coords, labels = to_arrays(prompt, emb.width, emb.height, self.max_points)
        t1 = time.perf_counter()
        item = DecodeItem(emb, coords, labels, mask_input)
        out = await sam.decode.submit(item, lane, self.timeout_s)
        t2 = time.perf_counter()
        enc = await asyncio.to_thread(masks.encode, out.mask)
        poly = await asyncio.to_thread(masks.polygons, out.mask) if polygons else None
        new_id = uuid.uuid4().hex
        self.low_res.put(new_id, LowResMask(key, out.low_res))
        result = MaskResult(new_id, enc.rle, enc.bbox, enc.area, round(out.iou, 4), poly)
        t3 = time.perf_counter()
        return SegmentResult(
            embedding_id,
            model,
            emb.width,
            emb.height,
            [result],
            cached,
            {
                "embed_ms": round((t1 - t0) * 1000, 2),
                "decoder_ms": round((t2 - t1) * 1000, 2),
                "encode_mask_ms": round((t3 - t2) * 1000, 2),
                "total_ms": round((t3 - t0) * 1000, 2),
            },
        )


def _cache_key(embedding_id: str, scope: str) -> str:
    """The cache's key for an embedding in `scope` ("" = shared by all callers)."""
    return f"{scope}\x00{embedding_id}" if scope else embedding_id


def low_res_nbytes(entry: LowResMask) -> int:
    return int(entry.logits.nbytes) + 128


def embedding_nbytes(emb: Embedding) -> int:
    return emb.nbytes + 128
