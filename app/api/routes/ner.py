"""POST /v1/ner."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import json_response, lane, runtime_of
from app.api.inputs import StrictJsonRoute, body_cap, json_body_doc, read_json
from app.api.schemas import NerRequest, NerResponse, NerResultOut, NerSpanOut
from app.domain.formats.catalogue import resolve
from app.domain.formats.records import SpanRecord, TextRecord
from app.domain.formats.render import render_texts
from app.domain.uncertainty import of_score, of_text

router = APIRouter(prefix="/v1", tags=["ner"], route_class=StrictJsonRoute)


@router.post(
    "/ner",
    response_model=NerResponse,
    summary="Entity spans for texts",
    openapi_extra=json_body_doc(NerRequest),
)
async def ner(request: Request) -> Response:
    """Spans `{start, end, label, text, score}` per text; offsets are code points (Python
    string indices) into the text as sent, so `text[start:end] == span.text`."""
    runtime = runtime_of(request)
    s = runtime.settings
    # Parsed and validated on a worker thread when large (app/api/offloop.py). A body of 27 MiB
    # of short strings is ~1.4 s of GIL-held parsing here: the comma bound (one per 4 characters
    # of the most text a request may carry) refuses it before the parse.
    values = s.max_texts * s.max_text_chars // 4 + 1000
    body = await read_json(request, NerRequest, body_cap(s.max_upload_bytes), values)
    if body.format:
        resolve(body.format, "text", "http")
    r = await runtime.ner.recognise(
        body.texts, body.model or runtime.settings.default_ner, body.min_score, lane(body.priority)
    )
    if body.format:
        records = [
            TextRecord(text, tuple(SpanRecord(s.start, s.end, s.label, s.score) for s in spans))
            for text, spans in zip(body.texts, r.spans, strict=True)
        ]
        out = render_texts(records, body.format, f"{r.model}-{r.version}")
        return Response(out.body, media_type=out.media_type)
    return json_response(
        NerResponse(
            model=r.model,
            version=r.version,
            results=[
                NerResultOut(
                    spans=[
                        NerSpanOut(
                            start=s.start,
                            end=s.end,
                            label=s.label,
                            text=s.text,
                            score=s.score,
                            uncertainty=of_score(s.score),
                        )
                        for s in spans
                    ],
                    uncertainty=of_text([of_score(s.score) for s in spans]),
                )
                for spans in r.spans
            ],
            timings=r.timings,
        )
    )
