"""POST /v1/sam/embed and /v1/sam/segment."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.auth import principal_of
from app.api.deps import json_response, lane, runtime_of
from app.api.inputs import image_body_doc, read_image_request
from app.api.schemas import (
    EmbedJson,
    EmbedOptions,
    EmbedResponse,
    MaskOut,
    RleOut,
    SegmentJson,
    SegmentOptions,
    SegmentResponse,
)
from app.domain.formats.catalogue import resolve
from app.domain.formats.records import ImageRecord
from app.domain.formats.render import render_image
from app.domain.prompts import Point, Prompt
from app.domain.uncertainty import of_score

router = APIRouter(prefix="/v1/sam", tags=["sam"])


def cache_scope(request: Request) -> str:
    """The caller's scope in the embedding cache: its API key name with
    `PRELABEL_EMBEDDING_CACHE_PER_KEY` on (and keys configured), else "" (shared)."""
    who = principal_of(request)
    if runtime_of(request).settings.embedding_cache_per_key and who is not None:
        return who.name
    return ""


@router.post(
    "/embed",
    response_model=EmbedResponse,
    openapi_extra=image_body_doc(EmbedJson),
    summary="Compute (or reuse) an image's SAM embedding",
)
async def embed(request: Request) -> Response:
    """Run the image encoder once per distinct image (keyed by model and the bytes' sha256);
    later calls with the same bytes return the cached `embedding_id` at once. `cached: true`
    means someone (any caller, or only this API key with `PRELABEL_EMBEDDING_CACHE_PER_KEY`)
    embedded the same bytes within the cache's TTL."""
    runtime = runtime_of(request)
    s = runtime.settings
    image, opts = await read_image_request(
        request, EmbedOptions, s.max_upload_bytes, fetch=runtime.url_fetcher.fetch
    )
    assert image is not None
    r = await runtime.segmentation.embed(
        image, opts.model or s.default_sam, lane(opts.priority), cache_scope(request)
    )
    return json_response(
        EmbedResponse(
            embedding_id=r.embedding_id,
            model=r.model,
            width=r.width,
            height=r.height,
            cached=r.cached,
            timings=r.timings,
        )
    )


@router.post(
    "/segment",
    response_model=SegmentResponse,
    openapi_extra=image_body_doc(SegmentJson),
    summary="A mask from clicks and/or a box",
)
async def segment(request: Request) -> Response:
    """Prompts on a cached embedding (`embedding_id`) or an image: points `{x, y, positive}`
    and/or a box `[x1, y1, x2, y2]` in pixels; `mask_id` refines an earlier mask. The mask comes
    back as COCO RLE with its bbox, area, predicted IoU and, on request, polygons."""
    runtime = runtime_of(request)
    s = runtime.settings
    image, opts = await read_image_request(
        request,
        SegmentOptions,
        s.max_upload_bytes,
        image_required=False,
        fetch=runtime.url_fetcher.fetch,
    )
    if opts.format:
        resolve(opts.format, "image", "http")
    prompt = Prompt(
        points=tuple(Point(p.x, p.y, p.positive) for p in opts.points),
        box=opts.box,
    )
    r = await runtime.segmentation.segment(
        prompt,
        opts.model or s.default_sam,
        embedding_id=opts.embedding_id,
        image=image,
        mask_id=opts.mask_id,
        polygons=opts.polygons,
        lane=lane(opts.priority),
        scope=cache_scope(request),
    )
    if opts.format:
        objects = tuple(m.as_record(opts.label) for m in r.masks)
        record = ImageRecord(opts.file_name, r.width, r.height, objects)
        out = render_image(record, opts.format, [opts.label], r.model)
        return Response(out.body, media_type=out.media_type)
    return json_response(
        SegmentResponse(
            embedding_id=r.embedding_id,
            model=r.model,
            width=r.width,
            height=r.height,
            encoder_cached=r.encoder_cached,
            masks=[
                MaskOut(
                    mask_id=m.mask_id,
                    rle=RleOut.model_validate(m.rle),
                    bbox=m.bbox,
                    area=m.area,
                    predicted_iou=m.predicted_iou,
                    polygons=m.polygons,
                    uncertainty=of_score(m.predicted_iou),
                )
                for m in r.masks
            ],
            timings=r.timings,
        )
    )
