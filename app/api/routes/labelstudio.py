"""Label Studio's ML-backend protocol: /health, /setup, /predict, /webhook.

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
from app.api.inputs import StrictJsonRoute
from app.errors import BadInput, ValidationFailed

router = APIRouter(tags=["label-studio"], route_class=StrictJsonRoute)
log = logging.getLogger(__name__)

# A labeling config is a few KB (a large taxonomy a few hundred); parsed configs are cached per
# text, so their size is capped.
MAX_CONFIG_CHARS = 1_000_000


class LsHealth(BaseModel):
    status: str = Field(description='"UP" whenever the process serves; see `ready`.')
    model_class: str
    ready: bool


class LsSetup(BaseModel):
    """What Label Studio sends to /setup; fields it may add later are ignored."""

    model_config = ConfigDict(extra="ignore")

    project: str = Field(description='"<project id>.<created unix timestamp>"')
    schema_: str = Field(
        default="", alias="schema", max_length=MAX_CONFIG_CHARS, description="The labeling config."
    )
    hostname: str | None = None
    access_token: str | None = None
    extra_params: Any = None


class LsSetupResponse(BaseModel):
    model_version: str


class LsPredictRequest(BaseModel):
    """What Label Studio sends to /predict."""

    model_config = ConfigDict(extra="ignore")

    tasks: list[dict[str, Any]] = Field(max_length=100_000)
    project: str = ""
    label_config: str | None = Field(default=None, max_length=MAX_CONFIG_CHARS)
    params: dict[str, Any] | None = None


class LsPredictResponse(BaseModel):
    results: list[dict[str, Any]]


class LsWebhookAck(BaseModel):
    status: str


@router.get("/health", response_model=LsHealth, summary="Label Studio health check")
async def health(request: Request) -> Response:
    runtime = runtime_of(request)
    return json_response(LsHealth(status="UP", model_class="Prelabel", ready=runtime.ready))


@router.post("/setup", response_model=LsSetupResponse, summary="Label Studio project setup")
async def setup(body: LsSetup, request: Request) -> Response:
    """Records the project's config, host and token; loads nothing. The returned
    `model_version` is stable for a given config and set of models."""
    project = runtime_of(request).ls_projects.setup(
        body.project, body.schema_, body.hostname, body.access_token
    )
    return json_response(LsSetupResponse(model_version=project.model_version))


@router.post("/predict", response_model=LsPredictResponse, summary="Label Studio predictions")
async def predict(body: LsPredictRequest, request: Request) -> Response:
    """One entry per task, in order. Tasks not finished within PRELABEL_LS_BUDGET_S come back
    without `result` (Label Studio stores nothing for them) and keep computing on the bulk lane;
    the next call returns them at once. With `params.context.result` (a smart keypoint or
    rectangle), one SAM mask as `brushlabels`. At most PRELABEL_LS_MAX_TASKS tasks per call,
    and PRELABEL_MAX_POINTS + 1 context regions (the clicks and a box)."""
    runtime = runtime_of(request)
    _check_limits(body, runtime.settings.ls_max_tasks, runtime.settings.max_points + 1)
    results = await runtime.ls_predictor.predict(
        body.tasks, body.project, body.label_config, body.params
    )
    return json_response(LsPredictResponse(results=results))


def _check_limits(body: LsPredictRequest, max_tasks: int, max_regions: int) -> None:
    if len(body.tasks) > max_tasks:
        raise ValidationFailed(f"{len(body.tasks)} tasks; at most {max_tasks} per /predict call")
    context = (body.params or {}).get("context")
    regions = context.get("result") if isinstance(context, dict) else None
    if regions is None:
        return
    if not isinstance(regions, list) or not all(isinstance(r, dict) for r in regions):
        raise ValidationFailed("params.context.result must be a list of regions (objects)")
    if len(regions) > max_regions:
        raise ValidationFailed(f"{len(regions)} context regions; at most {max_regions}")


@router.post("/webhook", response_model=LsWebhookAck, summary="Label Studio webhook events")
async def webhook(body: dict[str, Any], request: Request) -> Response:
    """Acknowledges at once; annotation events are kept (and appended to
    PRELABEL_EVENTS_PATH when set) for active learning later. With
    PRELABEL_LS_PRECOMPUTE_EMBEDDINGS, TASKS_CREATED starts SAM embeddings for the new images
    on the bulk lane."""
    runtime = runtime_of(request)
    await asyncio.to_thread(runtime.events.record, body)
    if body.get("action") == "TASKS_CREATED" and runtime.settings.ls_precompute_embeddings:
        about = body.get("project")  # the event is acknowledged whatever its fields hold
        number = about.get("id") if isinstance(about, dict) else None
        project = runtime.ls_projects.by_number(number) if number is not None else None
        tasks = body.get("tasks")
        if project is not None and isinstance(tasks, list):
            try:
                tasks = [t for t in tasks if isinstance(t, dict)]
                runtime.ls_predictor.precompute_embeddings(project, tasks)
            except BadInput as e:  # the project's config does not parse
                log.warning("TASKS_CREATED for project %s: %s", number, e.message)
    return json_response(LsWebhookAck(status="ok"))
