"""POST /v1/tokens."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from app.api.deps import json_response, lane, runtime_of
from app.api.inputs import StrictJsonRoute, body_cap, json_body_doc, read_json
from app.api.schemas import TOKEN_FORMATS, TokenOut, TokensRequest, TokensResponse, TokensResultOut
from app.domain.formats.conllu import pos_task, to_conllu
from app.domain.formats.render import check

router = APIRouter(prefix="/v1", tags=["tokens"], route_class=StrictJsonRoute)


@router.post(
    "/tokens",
    response_model=TokensResponse,
    summary="Parts of speech, lemmas and dependencies for texts",
    openapi_extra=json_body_doc(TokensRequest),
)
async def tokens(request: Request) -> Response:
    """Tokens `{start, end, text, pos, tag, lemma, dep, head, sentence, morph}` per text, with
    code-point offsets as in /v1/ner (whitespace is not a token). `format=conllu` answers
    CoNLL-U, `format=labelstudio` a Label Studio task per text with a `labels` region per
    token (from_name `pos`, to_name `text`)."""
    runtime = runtime_of(request)
    s = runtime.settings
    values = s.max_texts * s.max_text_chars // 4 + 1000
    body = await read_json(request, TokensRequest, body_cap(s.max_upload_bytes), values)
    if body.format:
        check(body.format, TOKEN_FORMATS)
    r = await runtime.tokens.tag(body.texts, body.model or s.default_ner, lane(body.priority))
    mv = f"{r.model}-{r.version}"
    if body.format == "conllu":
        return Response(to_conllu(zip(body.texts, r.tokens, strict=True)), media_type="text/plain")
    if body.format == "labelstudio":
        tasks = [pos_task(text, toks, mv) for text, toks in zip(body.texts, r.tokens, strict=True)]
        return Response(json.dumps(tasks, ensure_ascii=False), media_type="application/json")
    return json_response(
        TokensResponse(
            model=r.model,
            version=r.version,
            results=[
                TokensResultOut(
                    tokens=[
                        TokenOut(
                            start=t.start,
                            end=t.end,
                            text=t.text,
                            pos=t.pos,
                            tag=t.tag,
                            lemma=t.lemma,
                            dep=t.dep,
                            head=t.head,
                            sentence=t.sentence,
                            morph=t.morph,
                        )
                        for t in toks
                    ]
                )
                for toks in r.tokens
            ],
            timings=r.timings,
        )
    )
