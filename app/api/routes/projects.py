"""/v1/projects/{project}: labeled examples, training and the model of a project classifier.

A project belongs to the API key that created it (its first upload): other `user` keys get 404
(409 when they try to create that name); `admin` keys see and change all of them.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.auth import principal_of
from app.api.deps import json_response, runtime_of
from app.api.inputs import StrictJsonRoute
from app.domain.classify.projects import Example, ModelInfo

router = APIRouter(prefix="/v1/projects", tags=["projects"], route_class=StrictJsonRoute)


class ExampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    label: str | None = Field(default=None, description="Single-label projects.")
    labels: list[str] | None = Field(default=None, description="Multi-label projects.")
    key: str | None = Field(
        default=None,
        max_length=256,
        description="Your id for the example; sending a key again replaces its labels. "
        "Default: a hash of the text.",
    )

    @model_validator(mode="after")
    def _one_label_field(self) -> ExampleIn:
        if (self.label is None) == (self.labels is None):
            raise ValueError("give exactly one of label and labels")
        return self


class ExamplesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    examples: list[ExampleIn]
    labels: list[str] | None = Field(
        default=None,
        description="On the first upload: the project's fixed label set (examples with other "
        "labels are refused). Omit to accept any label.",
    )
    multi_label: bool | None = Field(default=None, description="On the first upload.")


class ModelOut(BaseModel):
    project: str
    multi_label: bool
    labels: list[str] | None = Field(description="The fixed label set, if one was declared.")
    examples: int
    examples_per_label: dict[str, int]
    revision: int = Field(description="Bumped by every change to the examples.")
    version: str | None = Field(description="The serving model's '<version>-<hash>'.")
    trained_at: float | None = Field(description="Unix time.")
    trained_on: int | None = Field(description="Examples the serving model learned from.")
    cv_accuracy: float | None = Field(description="k-fold accuracy (k <= 5); null: too few.")
    cv_macro_f1: float | None
    cv_folds: int | None
    stale: bool = Field(description="Examples changed since the serving model was trained.")
    training: bool
    last_error: str | None = Field(description="The latest training run's failure.")
    note: str | None = Field(description="Why the latest run stored no model, if it did not.")


class Deleted(BaseModel):
    project: str
    deleted: bool


def _out(m: ModelInfo) -> ModelOut:
    return ModelOut(
        project=m.project,
        multi_label=m.multi_label,
        labels=None if m.labels is None else list(m.labels),
        examples=m.examples,
        examples_per_label=m.examples_per_label,
        revision=m.revision,
        version=m.version,
        trained_at=m.trained_at,
        trained_on=m.trained_on,
        cv_accuracy=m.cv.get("cv_accuracy"),
        cv_macro_f1=m.cv.get("cv_macro_f1"),
        cv_folds=m.cv.get("cv_folds"),
        stale=m.stale,
        training=m.training,
        last_error=m.last_error,
        note=m.note,
    )


@router.post("/{project}/examples", response_model=ModelOut, summary="Add labeled examples")
async def add_examples(project: str, body: ExamplesIn, request: Request) -> Response:
    """Stores every example or none (a 4xx stores nothing), then retrains in the background."""
    info = await runtime_of(request).projects.add_examples(
        project,
        principal_of(request),
        [
            Example(e.text, (e.label,) if e.label is not None else tuple(e.labels or ()), e.key)
            for e in body.examples
        ],
        body.labels,
        body.multi_label,
    )
    return json_response(_out(info))


class KeysIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[str] = Field(description="The examples' keys (yours, or the text hashes).")


class RemovedOut(BaseModel):
    removed: int
    model: ModelOut


@router.post(
    "/{project}/examples/delete", response_model=RemovedOut, summary="Remove examples by key"
)
async def remove_examples(project: str, body: KeysIn, request: Request) -> Response:
    """Keys that do not exist are ignored; a removal retrains in the background."""
    gone, info = await runtime_of(request).projects.remove_examples(
        project, principal_of(request), body.keys
    )
    return json_response(RemovedOut(removed=gone, model=_out(info)))


@router.post("/{project}/train", response_model=ModelOut, summary="Retrain now")
async def train(
    project: str,
    request: Request,
    wait: bool = Query(False, description="Answer when training has ended."),
) -> Response:
    info = await runtime_of(request).projects.train(project, principal_of(request), wait)
    out = _out(info)
    return Response(
        out.model_dump_json(), status_code=200 if wait else 202, media_type="application/json"
    )


@router.get("/{project}/model", response_model=ModelOut, summary="The project's model state")
async def model(project: str, request: Request) -> Response:
    return json_response(
        _out(await runtime_of(request).projects.info(project, principal_of(request)))
    )


@router.delete("/{project}", response_model=Deleted, summary="Delete a project (reset)")
async def delete(project: str, request: Request) -> Response:
    """Its examples and models are removed; the name becomes free."""
    await runtime_of(request).projects.delete(project, principal_of(request))
    return json_response(Deleted(project=project, deleted=True))
