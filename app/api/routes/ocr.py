"""POST /v1/ocr."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from app.api.deps import json_response, lane, runtime_of
from app.api.inputs import image_body_doc, read_image_request
from app.api.schemas import (
    OCR_FORMATS,
    OcrJson,
    OcrOptions,
    OcrResponse,
    TextLineOut,
    WordOut,
)
from app.domain.formats.ocr import ocr_jsonl, ocr_task
from app.domain.formats.render import check

router = APIRouter(prefix="/v1", tags=["ocr"])


@router.post(
    "/ocr",
    response_model=OcrResponse,
    openapi_extra=image_body_doc(OcrJson),
    summary="Text lines in an image",
)
async def ocr(request: Request) -> Response:
    """Upload an image (multipart `file`, JSON `image` in base64, or `image_url`) and get its
    text lines `{polygon, text, score}` in reading order, polygons in the image's own pixels
    (EXIF orientation applied)."""
    runtime = runtime_of(request)
    s = runtime.settings
    image, opts = await read_image_request(
        request, OcrOptions, s.max_upload_bytes, fetch=runtime.url_fetcher.fetch
    )
    assert image is not None
    if opts.format:
        check(opts.format, OCR_FORMATS)
    r = await runtime.ocr.read(
        image, opts.model or s.default_ocr, opts.min_score, lane(opts.priority), opts.words
    )
    mv = f"{r.model}-{r.version}"
    if opts.format == "labelstudio":
        task = ocr_task(opts.file_name, r.width, r.height, r.lines, mv, opts.label)
        return Response(json.dumps(task, ensure_ascii=False), media_type="application/json")
    if opts.format == "jsonl":
        return Response(
            ocr_jsonl(opts.file_name, r.width, r.height, r.lines), media_type="application/jsonl"
        )
    return json_response(
        OcrResponse(
            model=r.model,
            version=r.version,
            width=r.width,
            height=r.height,
            lines=[
                TextLineOut(
                    polygon=list(ln.polygon),
                    text=ln.text,
                    score=round(ln.score, 4),
                    box_score=round(ln.box_score, 4),
                    rotated=ln.rotated,
                    words=None
                    if ln.words is None
                    else [WordOut(text=t, polygon=list(p)) for t, p in ln.words],
                )
                for ln in r.lines
            ],
            timings=r.timings,
        )
    )
