"""POST /v1/keypoints."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from app.api.deps import json_response, lane, runtime_of
from app.api.inputs import image_body_doc, read_image_request
from app.api.schemas import (
    KEYPOINT_FORMATS,
    KeypointOut,
    KeypointsJson,
    KeypointsOptions,
    KeypointsResponse,
    PoseInstanceOut,
)
from app.domain.formats.keypoints import (
    keypoint_task,
    to_coco_keypoint_results,
    to_coco_keypoints,
    to_yolo_pose,
)
from app.domain.formats.render import check

router = APIRouter(prefix="/v1", tags=["keypoints"])


@router.post(
    "/keypoints",
    response_model=KeypointsResponse,
    openapi_extra=image_body_doc(KeypointsJson),
    summary="Keypoint instances (human pose) in an image",
)
async def keypoints(request: Request) -> Response:
    """Upload an image (multipart `file`, JSON `image` in base64, or `image_url`) and get
    instances `{label, box, score, keypoints: [{name, x, y, score}]}` in the image's own pixels
    (EXIF applied), best first, with the keypoint names and skeleton."""
    runtime = runtime_of(request)
    s = runtime.settings
    image, o = await read_image_request(
        request, KeypointsOptions, s.max_upload_bytes, fetch=runtime.url_fetcher.fetch
    )
    assert image is not None
    if o.format:
        check(o.format, KEYPOINT_FORMATS)
    r = await runtime.keypoints.detect(
        image, o.model or s.default_keypoints, o.min_score, o.max_instances, lane(o.priority)
    )
    t = o.keypoint_threshold
    if o.format == "coco":
        label = r.instances[0].label if r.instances else "person"
        doc = to_coco_keypoints(
            [(o.file_name, r.width, r.height, r.instances)], label, r.keypoint_names, r.skeleton, t
        )
        return Response(json.dumps(doc), media_type="application/json")
    if o.format == "coco-results":
        return Response(
            json.dumps(to_coco_keypoint_results([r.instances])), media_type="application/json"
        )
    if o.format == "yolo":
        return Response(to_yolo_pose(r.instances, r.width, r.height, t), media_type="text/plain")
    if o.format == "labelstudio":
        mv = f"{r.model}-{r.version}"
        task = keypoint_task(o.file_name, r.instances, r.width, r.height, mv, t)
        return Response(json.dumps(task, ensure_ascii=False), media_type="application/json")
    return json_response(
        KeypointsResponse(
            model=r.model,
            version=r.version,
            width=r.width,
            height=r.height,
            instances=[
                PoseInstanceOut(
                    label=i.label,
                    box=i.box,
                    score=i.score,
                    keypoints=[
                        KeypointOut(name=k.name, x=k.x, y=k.y, score=k.score) for k in i.keypoints
                    ],
                )
                for i in r.instances
            ],
            keypoint_names=list(r.keypoint_names),
            skeleton=list(r.skeleton),
            timings=r.timings,
        )
    )
