"""POST /v1/detect."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import json_response, lane, runtime_of
from app.api.inputs import image_body_doc, read_image_request
from app.api.schemas import DetectionOut, DetectJson, DetectOptions, DetectResponse
from app.domain.detection import DetectParams
from app.domain.formats.catalogue import resolve
from app.domain.formats.records import ImageRecord, ObjectRecord
from app.domain.formats.render import render_image
from app.domain.uncertainty import of_image, of_score

router = APIRouter(prefix="/v1", tags=["detect"])


@router.post(
    "/detect",
    response_model=DetectResponse,
    openapi_extra=image_body_doc(DetectJson),
    summary="Boxes for an image",
)
async def detect(request: Request) -> Response:
    """Upload an image (multipart `file`, or JSON `image` in base64; or `image_url`) and get
    labelled boxes `[x1, y1, x2, y2]` in the image's own pixels, best first."""
    runtime = runtime_of(request)
    s = runtime.settings
    image, opts = await read_image_request(
        request, DetectOptions, s.max_upload_bytes, fetch=runtime.url_fetcher.fetch
    )
    assert image is not None
    if opts.format:
        resolve(opts.format, "image", "http")
    result = await runtime.detection.detect(
        image,
        DetectParams(
            model=opts.model or s.default_detector,
            score_threshold=opts.score_threshold,
            iou_threshold=opts.iou_threshold,
            max_detections=opts.max_detections,
            classes=frozenset(opts.classes) if opts.classes is not None else None,
            lane=lane(opts.priority),
        ),
    )
    if opts.format:
        record = ImageRecord(
            opts.file_name,
            result.width,
            result.height,
            tuple(ObjectRecord(d.label, d.box, d.score) for d in result.detections),
        )
        labels = runtime.registry.detector(result.model).adapter.labels
        out = render_image(record, opts.format, labels, f"{result.model}-{result.version}")
        return Response(out.body, media_type=out.media_type)
    return json_response(
        DetectResponse(
            model=result.model,
            version=result.version,
            width=result.width,
            height=result.height,
            detections=[
                DetectionOut(label=d.label, score=d.score, box=d.box, uncertainty=of_score(d.score))
                for d in result.detections
            ],
            timings=result.timings,
            uncertainty=of_image([d.score for d in result.detections]),
        )
    )
