"""POST /v1/ner."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import RuntimeDep, lane
from app.api.schemas import NerRequest, NerResponse, NerResultOut, SpanOut

router = APIRouter(prefix="/v1", tags=["ner"])


@router.post("/ner", response_model=NerResponse, summary="Entity spans for texts")
async def ner(body: NerRequest, runtime: RuntimeDep) -> NerResponse:
    """Spans `{start, end, label, text, score}` per text; offsets are code points (Python
    string indices) into the text as sent, so `text[start:end] == span.text`."""
    r = await runtime.ner.recognise(
        body.texts, body.model or runtime.settings.default_ner, body.min_score, lane(body.priority)
    )
    return NerResponse(
        model=r.model,
        version=r.version,
        results=[
            NerResultOut(
                spans=[
                    SpanOut(start=s.start, end=s.end, label=s.label, text=s.text, score=s.score)
                    for s in spans
                ]
            )
            for spans in r.spans
        ],
        timings=r.timings,
    )
