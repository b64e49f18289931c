"""/v1/projects/{project}: labeled examples, training and the model of a project classifier
(`kind` "classify") or entity recogniser (`kind` "spans": examples carry spans, and
`POST /v1/projects/{project}/spans` predicts them).

A project belongs to the API key that created it (its first upload): other `user` keys get 404
(409 when they try to create that name); `admin` keys see and change all of them.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.auth import principal_of
from app.api.deps import json_response, lane, runtime_of
from app.api.inputs import StrictJsonRoute
from app.api.schemas import Priority, SpanOut
from app.domain.classify.projects import Example, ModelInfo
from app.domain.classify.spans import SpanExample
from app.errors import ValidationFailed

router = APIRouter(prefix="/v1/projects", tags=["projects"], route_class=StrictJsonRoute)


class SpanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: int = Field(description="Code-point offset (Python str index), inclusive.")
    end: int = Field(description="Code-point offset, exclusive.")
    label: str


class ExampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    label: str | None = Field(default=None, description="Single-label projects.")
    labels: list[str] | None = Field(default=None, description="Multi-label projects.")
    spans: list[SpanIn] | None = Field(
        default=None, description="Span projects: non-overlapping entity spans (may be [])."
    )
    key: str | None = Field(
        default=None,
        max_length=256,
        description="Your id for the example; sending a key again replaces its labels. "
        "Default: a hash of the text.",
    )

    @model_validator(mode="after")
    def _one_label_field(self) -> ExampleIn:
        if sum(x is not None for x in (self.label, self.labels, self.spans)) != 1:
            raise ValueError("give exactly one of label and labels (or spans, in a span project)")
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
    kind: Literal["classify", "spans"] | None = Field(
        default=None,
        description="On the first upload: 'spans' for an entity-span project (default: "
        "'spans' when the examples carry spans, else 'classify').",
    )
    pretrained: dict[str, str] | None = Field(
        default=None,
        description="Span projects, first upload: {project label: pretrained NER label} whose "
        "pretrained spans are merged in (default: pretrained labels of the same name).",
    )
    ner_model: str | None = Field(
        default=None,
        description="Span projects, first upload: the pretrained NER model to merge (default: "
        "the server's; '' for none).",
    )


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
    kind: Literal["classify", "spans"] = "classify"
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
        kind=m.kind,
    )


@router.post("/{project}/examples", response_model=ModelOut, summary="Add labeled examples")
async def add_examples(project: str, body: ExamplesIn, request: Request) -> Response:
    """Stores every example or none (a 4xx stores nothing), then retrains in the background."""
    with_spans = [e.spans is not None for e in body.examples]
    if body.kind == "spans" or (body.kind is None and any(with_spans)):
        if not all(with_spans):
            raise ValidationFailed("a span project's examples are {text, spans}")
        if body.multi_label is not None:
            raise ValidationFailed("multi_label is for classification projects")
        spans = await runtime_of(request).spans.add_examples(
            project,
            principal_of(request),
            [
                SpanExample(e.text, tuple((s.start, s.end, s.label) for s in e.spans or ()), e.key)
                for e in body.examples
            ],
            body.labels,
            body.pretrained,
            body.ner_model,
        )
        return json_response(_out(spans))
    if any(with_spans) or body.pretrained is not None or body.ner_model is not None:
        raise ValidationFailed("spans, pretrained and ner_model are for span projects")
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


class SpansIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1)
    priority: Priority = "interactive"


class ProjectSpanOut(SpanOut):
    source: Literal["project", "pretrained"] = Field(
        description="'project': the project's learned model; 'pretrained': the NER model's."
    )


class ProjectSpansResultOut(BaseModel):
    spans: list[ProjectSpanOut]


class ProjectSpansOut(BaseModel):
    project: str
    model_version: str | None = Field(
        description="The learned model's '<version>-<hash>'; null before the first."
    )
    pretrained: str | None = Field(description="'<model>@<version>' merged in, if any.")
    results: list[ProjectSpansResultOut]
    timings: dict[str, float]


@router.post(
    "/{project}/spans", response_model=ProjectSpansOut, summary="Entity spans, project labels"
)
async def spans(project: str, body: SpansIn, request: Request) -> Response:
    """A span project's learned spans merged with the pretrained NER model's for the labels it
    maps (a learned span wins where they overlap)."""
    r = await runtime_of(request).spans.predict(
        project, principal_of(request), body.texts, lane(body.priority)
    )
    return json_response(
        ProjectSpansOut(
            project=r.project,
            model_version=r.model_version,
            pretrained=r.pretrained,
            results=[
                ProjectSpansResultOut(
                    spans=[
                        ProjectSpanOut(
                            start=s.start,
                            end=s.end,
                            label=s.label,
                            text=s.text,
                            score=s.score,
                            source=s.source,
                        )
                        for s in per_text
                    ]
                )
                for per_text in r.spans
            ],
            timings=r.timings,
        )
    )
