"""Wire schemas (pydantic) for requests and responses. Coordinates are original-image pixels."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.formats.catalogue import described
from app.geometry import BoxXYWH, BoxXYXY

Priority = Literal["interactive", "bulk"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectOptions(_In):
    model: str | None = Field(default=None, description="Detector name; default from settings.")
    score_threshold: float = Field(default=0.35, ge=0.0, le=1.0)
    iou_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    max_detections: int = Field(default=100, ge=1, le=1000)
    classes: list[str] | None = Field(default=None, description="Keep only these labels.")
    priority: Priority = "interactive"
    format: str | None = Field(default=None, description="Answer in this format: /v1/formats.")
    file_name: str = Field(default="image", description="The image's name in format output.")


IMAGE_URL_DOC = "Fetch the image from this http(s) URL instead (the URL policy applies)."


class ImageJson(_In):
    """Exactly one of `image` and `image_url`."""

    image: str | None = Field(
        default=None, description="The encoded image file (JPEG, PNG, WebP...) in base64."
    )
    image_url: str | None = Field(default=None, max_length=2048, description=IMAGE_URL_DOC)


class DetectJson(DetectOptions, ImageJson):
    pass


class EmbedOptions(_In):
    model: str | None = None
    priority: Priority = "interactive"


class EmbedJson(EmbedOptions, ImageJson):
    pass


class PointIn(_In):
    x: float = Field(description="Pixels from the left edge of the original image.")
    y: float = Field(description="Pixels from the top edge of the original image.")
    positive: bool = True


class SegmentOptions(_In):
    model: str | None = None
    embedding_id: str | None = Field(default=None, description="From /v1/sam/embed.")
    points: list[PointIn] = Field(default_factory=list)
    box: BoxXYXY | None = Field(default=None, description="[x1, y1, x2, y2] pixels.")
    mask_id: str | None = Field(default=None, description="Refine this earlier mask.")
    polygons: bool = False
    priority: Priority = "interactive"
    format: str | None = Field(default=None, description="Answer in this format: /v1/formats.")
    file_name: str = Field(default="image", description="The image's name in format output.")
    label: str = Field(default="object", description="The mask's label in format output.")


class SegmentJson(SegmentOptions):
    image: str | None = Field(default=None, description="Base64 image, instead of embedding_id.")
    image_url: str | None = Field(default=None, max_length=2048, description=IMAGE_URL_DOC)


class NerRequest(_In):
    texts: list[str] = Field(min_length=1)
    model: str | None = None
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    priority: Priority = "interactive"
    format: str | None = Field(default=None, description="Answer in this format: /v1/formats.")


class DetectionOut(BaseModel):
    label: str
    score: float
    box: BoxXYXY = Field(description="[x1, y1, x2, y2] pixels.")
    uncertainty: float | None = Field(
        default=None, description="1 - score (the adapters keep only the best class's score)."
    )


class DetectResponse(BaseModel):
    model: str
    version: str
    width: int
    height: int
    detections: list[DetectionOut]
    timings: dict[str, float]
    uncertainty: float | None = Field(
        default=None, description="The image's: 1 - the best box score; 1.0 with no box."
    )


class EmbedResponse(BaseModel):
    embedding_id: str
    model: str
    width: int
    height: int
    cached: bool
    timings: dict[str, float]


class RleOut(BaseModel):
    size: tuple[int, int] = Field(description="[height, width]")
    counts: str = Field(description="COCO compressed RLE (column-major), as pycocotools writes.")


class MaskOut(BaseModel):
    mask_id: str = Field(description="Pass as mask_id to refine this mask.")
    rle: RleOut
    bbox: BoxXYWH = Field(description="COCO [x, y, w, h] pixels.")
    area: int
    predicted_iou: float
    polygons: list[list[float]] | None = None
    uncertainty: float | None = Field(default=None, description="1 - predicted_iou, in [0, 1].")


class SegmentResponse(BaseModel):
    embedding_id: str
    model: str
    width: int
    height: int
    encoder_cached: bool
    masks: list[MaskOut]
    timings: dict[str, float]


class SpanOut(BaseModel):
    start: int = Field(description="Code-point offset (Python str index), inclusive.")
    end: int = Field(description="Code-point offset, exclusive.")
    label: str
    text: str
    score: float | None = Field(description="Confidence; null for models without one (spaCy).")


class NerSpanOut(SpanOut):
    uncertainty: float | None = Field(
        default=None, description="1 - score, in [0, 1]; null without a score (spaCy)."
    )


class NerResultOut(BaseModel):
    spans: list[NerSpanOut]
    uncertainty: float | None = Field(
        default=None, description="The text's: its most uncertain span's; null if none has one."
    )


class NerResponse(BaseModel):
    model: str
    version: str
    results: list[NerResultOut]
    timings: dict[str, float]


class BatchingOut(BaseModel):
    name: str
    max_batch_size: int
    max_wait_ms: float
    max_queue: int
    workers: int
    queued: int


class ModelOut(BaseModel):
    name: str
    task: str
    version: str
    status: str
    error: str | None
    provider: str | None
    license: str
    source: str
    labels: list[str]
    load_seconds: float | None
    batching: list[BatchingOut]
    keypoints: list[str] | None = Field(default=None, description="Keypoint models: names.")
    skeleton: list[tuple[int, int]] | None = Field(
        default=None, description="Keypoint models: 1-based index pairs into `keypoints`."
    )


class ModelsResponse(BaseModel):
    provider_policy: str
    onnxruntime: str
    models: list[ModelOut]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


# Every route's refusals in the OpenAPI document, one body for all of them (FastAPI would
# otherwise document its own 422 shape, which this service never sends).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": ErrorResponse,
        "description": "Refused: bad input (400, 422), unknown model or id (404), too large "
        "(413), not an accepted type (415), overloaded (429, with `Retry-After`).",
    },
    "5XX": {
        "model": ErrorResponse,
        "description": "Not ready or shutting down (503), deadline exceeded (504).",
    },
}


# -- /v1/tokens (parts of speech, lemmas, dependencies) -------------------------------------

TOKEN_FORMATS = described("tokens")  # app/domain/formats/catalogue.py


class TokensRequest(_In):
    texts: list[str] = Field(min_length=1)
    model: str | None = Field(default=None, description="A spaCy model; default: default_ner.")
    priority: Priority = "interactive"
    format: str | None = Field(default=None, description=f"One of {sorted(TOKEN_FORMATS)}.")


class TokenOut(BaseModel):
    start: int = Field(description="Code-point offset (Python str index), inclusive.")
    end: int = Field(description="Code-point offset, exclusive.")
    text: str
    pos: str = Field(description="Universal Dependencies part of speech (NOUN, VERB, ...).")
    tag: str = Field(description="The model's fine-grained tag (Penn Treebank for English).")
    lemma: str
    dep: str = Field(description="Dependency label to the head (ROOT at a sentence's root).")
    head: int = Field(description="Index of the head token in this text's list; a root's own.")
    sentence: int = Field(description="0-based sentence number within the text.")
    morph: str = Field(description="UD morphological features, `Number=Plur|...`; '' if none.")


class TokensResultOut(BaseModel):
    tokens: list[TokenOut]


class TokensResponse(BaseModel):
    model: str
    version: str
    results: list[TokensResultOut]
    timings: dict[str, float]


# -- /v1/ocr (text lines in images) ---------------------------------------------------------

OCR_FORMATS = described("ocr")  # app/domain/formats/catalogue.py


class OcrOptions(_In):
    model: str | None = Field(default=None, description="OCR model; default from settings.")
    min_score: float = Field(default=0.5, ge=0.0, le=1.0, description="Drop lines read below.")
    priority: Priority = "interactive"
    format: str | None = Field(default=None, description=f"One of {sorted(OCR_FORMATS)}.")
    file_name: str = Field(default="image", description="The image's name in format output.")
    label: str | None = Field(
        default=None, description="Label Studio format: a `labels` result per line too."
    )
    words: bool = Field(
        default=False, description="Also each line's words with their polygons (approximate)."
    )


class OcrJson(OcrOptions, ImageJson):
    pass


class WordOut(BaseModel):
    text: str
    polygon: list[tuple[float, float]]


class TextLineOut(BaseModel):
    polygon: list[tuple[float, float]] = Field(
        description="4 [x, y] pixels: top-left, top-right, bottom-right, bottom-left of the "
        "region in the image."
    )
    text: str
    score: float = Field(description="Recogniser confidence (mean character probability).")
    box_score: float = Field(description="Detector confidence for the region.")
    rotated: bool = Field(description="The line was read turned 180 degrees.")
    words: list[WordOut] | None = Field(default=None, description="With `words=true`.")


class OcrResponse(BaseModel):
    model: str
    version: str
    width: int
    height: int
    lines: list[TextLineOut]
    timings: dict[str, float]


# -- /v1/keypoints (pose) ---------------------------------------------------------------------

KEYPOINT_FORMATS = described("keypoints")  # app/domain/formats/catalogue.py


class KeypointsOptions(_In):
    model: str | None = Field(default=None, description="Keypoint model; default from settings.")
    min_score: float = Field(default=0.2, ge=0.0, le=1.0, description="Instance score floor.")
    max_instances: int = Field(default=6, ge=1, le=100)
    keypoint_threshold: float = Field(
        default=0.3, ge=0.0, le=1.0, description="Formats: a keypoint under it is not labelled."
    )
    priority: Priority = "interactive"
    format: str | None = Field(default=None, description=f"One of {sorted(KEYPOINT_FORMATS)}.")
    file_name: str = Field(default="image", description="The image's name in format output.")


class KeypointsJson(KeypointsOptions, ImageJson):
    pass


class KeypointOut(BaseModel):
    name: str
    x: float
    y: float
    score: float


class PoseInstanceOut(BaseModel):
    label: str
    box: BoxXYXY = Field(description="[x1, y1, x2, y2] pixels.")
    score: float
    keypoints: list[KeypointOut]


class KeypointsResponse(BaseModel):
    model: str
    version: str
    width: int
    height: int
    instances: list[PoseInstanceOut]
    keypoint_names: list[str]
    skeleton: list[tuple[int, int]] = Field(description="1-based pairs into keypoint_names.")
    timings: dict[str, float]
