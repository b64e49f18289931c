"""POST /v1/classify: texts into labels, zero-shot (labels given) or with a project's model."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import principal_of
from app.api.deps import json_response, lane, runtime_of
from app.api.inputs import StrictJsonRoute
from app.api.schemas import Priority
from app.domain.classify.zeroshot import LabelSpec
from app.domain.uncertainty import DEFAULT_STRATEGY, Bucket, Strategy, bucket

router = APIRouter(prefix="/v1", tags=["classify"], route_class=StrictJsonRoute)


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    examples: list[str] = Field(default_factory=list, max_length=20)


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1)
    labels: list[str | LabelIn] | None = Field(
        default=None,
        max_length=1000,
        description="Zero-shot: label names, or {name, description, examples} objects.",
    )
    project: str | None = Field(default=None, description="Use this project's classifier.")
    multi_label: bool | None = Field(
        default=None, description="Zero-shot: decide a label set (default single label)."
    )
    threshold: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="Multi-label decisions: few-shot probability (default 0.5) or zero-shot "
        "cosine similarity (default 0.3) a label needs.",
    )
    top_k: int = Field(default=5, ge=1, le=1000, description="Scores returned per text.")
    priority: Priority = "interactive"
    uncertainty: Strategy = Field(
        default=DEFAULT_STRATEGY,
        description="How `uncertainty` is computed over all the labels' scores: "
        "least_confidence, margin (default) or entropy, each in [0, 1].",
    )
    needs_human_above: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Stream mode: results with uncertainty >= this get needs_human=true.",
    )


class LabelScoreOut(BaseModel):
    label: str
    score: float = Field(
        description="Few-shot: the classifier's probability. Zero-shot: softmax of the "
        "cosines / 0.05 over the labels offered (sums to 1 per text)."
    )
    similarity: float | None = Field(
        description="Zero-shot: cosine between the text and the label, in [-1, 1]."
    )


class ClassifyResultOut(BaseModel):
    labels: list[str] = Field(description="The decision: the top label, or the multi-label set.")
    scores: list[LabelScoreOut] = Field(description="Best first, at most top_k.")
    uncertainty: float | None = Field(
        default=None, description="In [0, 1], higher = less sure (the request's strategy)."
    )
    difficulty: Bucket | None = Field(
        default=None, description="easy (uncertainty < 0.25), medium, hard (>= 0.6)."
    )
    needs_human: bool | None = Field(
        default=None, description="With needs_human_above: uncertainty >= it."
    )


class ClassifyResponse(BaseModel):
    mode: Literal["zero-shot", "few-shot"]
    model_version: str = Field(description="few-shot: the project model's '<version>-<hash>'.")
    embedder: str
    project: str | None
    results: list[ClassifyResultOut]
    timings: dict[str, float]


@router.post("/classify", response_model=ClassifyResponse, summary="Classify texts")
async def classify(body: ClassifyRequest, request: Request) -> Response:
    """Give `labels` for zero-shot classification, or `project` for the project's few-shot
    classifier (zero-shot over its labels until its first model is trained)."""
    runtime = runtime_of(request)
    labels = None
    if body.labels is not None:
        labels = [
            LabelSpec(x)
            if isinstance(x, str)
            else LabelSpec(x.name, x.description, tuple(x.examples))
            for x in body.labels
        ]
    r = await runtime.classifier.classify(
        body.texts,
        labels=labels,
        project=body.project,
        principal=principal_of(request),
        multi_label=body.multi_label,
        threshold=body.threshold,
        top_k=body.top_k,
        lane=lane(body.priority),
        strategy=body.uncertainty,
    )
    cut = body.needs_human_above
    return json_response(
        ClassifyResponse(
            mode=r.mode,
            model_version=r.model_version,
            embedder=r.embedder,
            project=body.project,
            results=[
                ClassifyResultOut(
                    labels=list(t.labels),
                    scores=[
                        LabelScoreOut(label=s.label, score=s.score, similarity=s.similarity)
                        for s in t.scores
                    ],
                    uncertainty=t.uncertainty,
                    difficulty=bucket(t.uncertainty),
                    needs_human=None
                    if cut is None or t.uncertainty is None
                    else t.uncertainty >= cut,
                )
                for t in r.results
            ],
            timings=r.timings,
        )
    )
