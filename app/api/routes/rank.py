"""POST /v1/rank: which texts of a pool to label next (active learning)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import principal_of
from app.api.deps import json_response, lane, runtime_of
from app.api.inputs import StrictJsonRoute
from app.api.routes.classify import LabelIn
from app.api.schemas import Priority
from app.domain import ranking
from app.domain.classify.zeroshot import LabelSpec
from app.domain.uncertainty import DEFAULT_STRATEGY, Bucket, Strategy, bucket
from app.errors import ValidationFailed

router = APIRouter(prefix="/v1", tags=["classify"], route_class=StrictJsonRoute)


class RankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1, description="The unlabeled pool.")
    labels: list[str | LabelIn] | None = Field(
        default=None, max_length=1000, description="Zero-shot labels, as for /v1/classify."
    )
    project: str | None = Field(default=None, description="Or this project's classifier.")
    k: int = Field(default=10, ge=1, le=10000, description="How many texts to pick.")
    strategy: ranking.Method = Field(
        default=DEFAULT_STRATEGY, description="least_confidence, margin, entropy or random."
    )
    diversity: ranking.Diversity = Field(
        default="none",
        description="kcenter: k-center greedy on the MiniLM embeddings among the 4k most "
        "uncertain; cluster: k-means over them, each cluster's most uncertain; none.",
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="For random and k-means.")
    priority: Priority = "interactive"


class PickOut(BaseModel):
    index: int = Field(description="Index into the request's texts.")
    uncertainty: float = Field(description="The classifier's, by the strategy (margin: random).")
    difficulty: Bucket
    label: str = Field(description="The classifier's current top label.")


class RankResponse(BaseModel):
    mode: str
    model_version: str
    strategy: ranking.Method
    diversity: ranking.Diversity
    picks: list[PickOut] = Field(description="In the order to label them.")


@router.post("/rank", response_model=RankResponse, summary="Texts to label next")
async def rank(body: RankRequest, request: Request) -> Response:
    """Classifies the pool (zero-shot `labels` or a `project`), then picks `k` texts by the
    strategy, optionally spread out over the embeddings so near-duplicates are not picked twice.
    Deterministic given `seed`."""
    if (body.labels is None) == (body.project is None):
        raise ValidationFailed("give either labels (zero-shot) or project, not both")
    labels = None
    if body.labels is not None:
        labels = [
            LabelSpec(x)
            if isinstance(x, str)
            else LabelSpec(x.name, x.description, tuple(x.examples))
            for x in body.labels
        ]
    strategy: Strategy = DEFAULT_STRATEGY if body.strategy == "random" else body.strategy
    r = await runtime_of(request).classifier.classify(
        body.texts,
        labels=labels,
        project=body.project,
        principal=principal_of(request),
        top_k=1,
        lane=lane(body.priority),
        strategy=strategy,
    )
    us = [t.uncertainty if t.uncertainty is not None else 1.0 for t in r.results]
    picks = ranking.pick(us, body.k, body.strategy, body.diversity, r.vectors, seed=body.seed)
    return json_response(
        RankResponse(
            mode=r.mode,
            model_version=r.model_version,
            strategy=body.strategy,
            diversity=body.diversity,
            picks=[
                PickOut(
                    index=i,
                    uncertainty=us[i],
                    difficulty=bucket(us[i]) or "hard",
                    label=r.results[i].labels[0] if r.results[i].labels else "",
                )
                for i in picks
            ],
        )
    )
