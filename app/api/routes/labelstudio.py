"""Label Studio's ML-backend protocol: /health, /setup, /predict, /webhook, /train.

Label Studio joins these names to the backend URL it was given, so they live at the root.
/health and /setup must answer at once whatever the models are doing (1 s and 3 s timeouts,
after which Label Studio marks the backend disconnected and silently skips predictions).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import json_response, runtime_of
from app.api.inputs import StrictJsonRoute, parse_json
from app.domain.labelstudio import training
from app.domain.labelstudio.config import MAX_CONFIG_CHARS
from app.errors import BadInput, PayloadTooLarge, PrelabelError, ValidationFailed

router = APIRouter(tags=["label-studio"], route_class=StrictJsonRoute)
log = logging.getLogger(__name__)

# A labeling config is a few KB (a large taxonomy a few hundred): MAX_CONFIG_CHARS. The other
# /setup fields are kept per project, so they are capped too.
MAX_PROJECT_CHARS = 256
MAX_HOSTNAME_CHARS = 2048
MAX_TOKEN_CHARS = 4096


class LsHealth(BaseModel):
    status: str = Field(description='"UP" whenever the process serves; see `ready`.')
    model_class: str
    ready: bool


class LsSetup(BaseModel):
    """What Label Studio sends to /setup; fields it may add later are ignored."""

    model_config = ConfigDict(extra="ignore")

    project: str = Field(
        max_length=MAX_PROJECT_CHARS, description='"<project id>.<created unix timestamp>"'
    )
    schema_: str = Field(
        default="", alias="schema", max_length=MAX_CONFIG_CHARS, description="The labeling config."
    )
    hostname: str | None = Field(
        default=None,
        max_length=MAX_HOSTNAME_CHARS,
        description="Label Studio's URL. Trusted (may be private) only when it is "
        "PRELABEL_LABEL_STUDIO_URL's origin or in PRELABEL_LS_ALLOWED_ORIGINS.",
    )
    access_token: str | None = Field(
        default=None,
        max_length=MAX_TOKEN_CHARS,
        description="Sent only to `hostname`. Without one, PRELABEL_LABEL_STUDIO_TOKEN is used "
        "for PRELABEL_LABEL_STUDIO_URL's host, and nothing for any other.",
    )
    extra_params: Any = None


class LsSetupResponse(BaseModel):
    model_version: str


class LsPredictRequest(BaseModel):
    """What Label Studio sends to /predict."""

    model_config = ConfigDict(extra="ignore")

    tasks: list[dict[str, Any]] = Field(max_length=100_000)
    project: str = Field(default="", max_length=MAX_PROJECT_CHARS)
    label_config: str | None = Field(default=None, max_length=MAX_CONFIG_CHARS)
    params: dict[str, Any] | None = None


class LsPredictResponse(BaseModel):
    results: list[dict[str, Any] | list[dict[str, Any]]] = Field(
        description="Per task, in order: a prediction, or [] (not ready yet, or failed: Label "
        "Studio stores nothing and asks again next time)."
    )


class LsWebhookAck(BaseModel):
    status: str


class LsTrainAck(BaseModel):
    """The answer to /train and to a START_TRAINING webhook."""

    status: str
    training: str = Field(
        description='START_TRAINING: "done", "running" (past the budget, it goes on), '
        '"refused" (too much learning in flight) or "nothing to learn" (no Choices on a Text).',
    )


class LsTrainRequest(BaseModel):
    """What Label Studio 1.23.2 POSTs to /train when its START_TRAINING webhook flag is off
    (ml/api_connector.py `train`): every annotated task, as its JSON export writes them."""

    model_config = ConfigDict(extra="ignore")

    annotations: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    project: str = Field(max_length=MAX_PROJECT_CHARS, description='"<id>.<created unix ts>"')
    label_config: str | None = Field(default=None, max_length=MAX_CONFIG_CHARS)
    params: Any = None


@router.get("/health", response_model=LsHealth, summary="Label Studio health check")
async def health(request: Request) -> Response:
    runtime = runtime_of(request)
    return json_response(LsHealth(status="UP", model_class="Prelabel", ready=runtime.ready))


@router.post("/setup", response_model=LsSetupResponse, summary="Label Studio project setup")
async def setup(body: LsSetup, request: Request) -> Response:
    """Records the project's config, host and token; loads nothing. The returned
    `model_version` is stable for a given config and set of models, and for a config with
    Choices on a Text also names the project's newest classifier (it changes when a retrain
    stores a model). The first /setup of such a project in this process pulls its existing
    annotations in the background."""
    runtime = runtime_of(request)
    project = runtime.ls_projects.setup(
        body.project, body.schema_, body.hostname, body.access_token
    )
    version = await training.setup_version(runtime.ls_predictor, project)
    return json_response(LsSetupResponse(model_version=version))


@router.post("/predict", response_model=LsPredictResponse, summary="Label Studio predictions")
async def predict(body: LsPredictRequest, request: Request) -> Response:
    """One entry per task, in order. Tasks not finished within PRELABEL_LS_BUDGET_S come back
    as [] (Label Studio stores nothing for them) and keep computing on the bulk lane; the next
    call returns them at once. With `params.context.result` (a smart keypoint or rectangle), one
    SAM mask as `brushlabels`; a malformed context is a 422 (checked in
    app/domain/labelstudio/interactive.py). At most PRELABEL_LS_MAX_TASKS tasks per call, and
    PRELABEL_MAX_POINTS + 1 context regions (the clicks and a box)."""
    runtime = runtime_of(request)
    max_tasks = runtime.settings.ls_max_tasks
    if len(body.tasks) > max_tasks:
        raise ValidationFailed(f"{len(body.tasks)} tasks; at most {max_tasks} per /predict call")
    results = await runtime.ls_predictor.predict(
        body.tasks, body.project, body.label_config, body.params
    )
    return json_response(LsPredictResponse(results=results))


WEBHOOK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


async def _capped_body(request: Request, cap: int) -> bytes:
    """The request body, PayloadTooLarge (413) past `cap` bytes (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"webhook body is {declared} bytes; the limit is {cap}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"webhook body is over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/webhook",
    response_model=LsWebhookAck,
    summary="Label Studio webhook events",
    openapi_extra=WEBHOOK_BODY,
)
async def webhook(request: Request) -> Response:
    """Acknowledges at once; a summary of each event is kept in memory and the whole event
    appended to PRELABEL_EVENTS_PATH when set. ANNOTATION_CREATED / ANNOTATION_UPDATED /
    ANNOTATIONS_DELETED update the project's classifier examples in the background (Choices on
    a Text); START_TRAINING pulls the project's annotations from Label Studio and retrains,
    waited for up to PRELABEL_LS_BUDGET_S (Label Studio waits 100 s). With
    PRELABEL_LS_PRECOMPUTE_EMBEDDINGS, TASKS_CREATED starts SAM embeddings for the new images
    on the bulk lane. Bodies over PRELABEL_LS_MAX_WEBHOOK_BYTES are a 413; what fails after the
    event is read is logged and counted (prelabel_ls_background_failures_total), never an error
    to Label Studio, which ignores it anyway."""
    runtime = runtime_of(request)
    body = parse_json(await _capped_body(request, runtime.settings.ls_max_webhook_bytes))
    if not isinstance(body, dict):
        raise ValidationFailed("a webhook event is a JSON object")
    predictor = runtime.ls_predictor
    about = body.get("project")  # the event is acknowledged whatever its fields hold
    number = about.get("id") if isinstance(about, dict) else None
    try:
        await asyncio.to_thread(runtime.events.record, body)
    except OSError as e:
        predictor.report("webhook", number, None, PrelabelError(f"events file: {e.strerror}"))
    learned: str | None = None
    try:
        learned = await training.on_webhook(predictor, body)
    except BadInput as e:  # the project's config does not parse
        predictor.report("webhook", number, None, e)
    if body.get("action") == "TASKS_CREATED" and runtime.settings.ls_precompute_embeddings:
        project = runtime.ls_projects.by_number(number) if number is not None else None
        tasks = body.get("tasks")
        if project is not None and isinstance(tasks, list):
            try:
                tasks = [t for t in tasks if isinstance(t, dict)]
                await predictor.precompute_embeddings(project, tasks)
            except BadInput as e:  # the project's config does not parse
                predictor.report("webhook", number, None, e)
    if body.get("action") == "START_TRAINING":
        return json_response(LsTrainAck(status="ok", training=learned or "nothing to learn"))
    return json_response(LsWebhookAck(status="ok"))


@router.post("/train", response_model=LsTrainAck, summary="Label Studio training")
async def train(body: LsTrainRequest, request: Request) -> Response:
    """Every annotated task becomes the examples of the project's classifiers (one per Choices
    on a Text; annotations no longer there are removed), which retrain; waits up to
    PRELABEL_LS_BUDGET_S. With Label Studio 1.23.2's default flags, "Start Training" sends a
    START_TRAINING webhook instead, which pulls the same tasks from its export."""
    runtime = runtime_of(request)
    status = await training.train(
        runtime.ls_predictor, body.project, body.label_config, body.annotations
    )
    return json_response(LsTrainAck(status="ok", training=status))
