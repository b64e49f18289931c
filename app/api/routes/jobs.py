"""/v1/jobs: batch jobs on the service (submit, list, status, results, export, cancel).

With API keys on, a job belongs to the key that submitted it: other `user` keys neither see nor
cancel it (404, as if it did not exist); `admin` keys see and cancel every job.

A job's items are image paths under `PRELABEL_JOB_INPUT_ROOTS` (detect, segment, keypoints, ocr)
or texts (ner, tokens);
it runs on the bulk lane and persists in the job store (`PRELABEL_JOBS_DB`, or PostgreSQL at
`PRELABEL_STATE_DSN`), resuming after a restart or on another replica.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app.api.admission import caller_of
from app.api.auth import principal_of
from app.api.deps import json_response, runtime_of
from app.api.inputs import StrictJsonRoute, body_cap, json_body_doc, read_json
from app.batch.jobbackend import JobBackend
from app.batch.jobrequest import JobRequest
from app.batch.jobs import JobManager, JobStatus
from app.errors import NotReady

router = APIRouter(prefix="/v1", tags=["jobs"], route_class=StrictJsonRoute)

RESULTS_CHUNK = 500


class JobIn(BaseModel):
    model_config = {"extra": "forbid"}

    task: Literal["detect", "segment", "ner", "tokens", "ocr", "keypoints"]
    items: list[str] | None = Field(
        default=None,
        description="Image paths under the input roots, or http(s) URLs (detect, segment, "
        "keypoints, ocr).",
    )
    texts: list[str] | None = Field(default=None, description="Texts (ner, tokens).")
    source: str | None = Field(
        default=None,
        description="Instead of items or texts: a folder or manifest under an input root "
        "(.lst, .txt, .jsonl, a Label Studio export), read as `prelabel annotate` reads it.",
    )
    model: str | None = Field(
        default=None, description="The task's model (detector, NER/spaCy, OCR, keypoints)."
    )
    format: str | None = Field(default=None, description="The export format the job is for.")
    score_threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Score floor: boxes (default 0.35), keypoint instances (0.2), OCR lines (0.5).",
    )


class JobOut(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    task: str
    model: str
    format: str | None
    total: int
    done: int
    failed: int
    rate: float = Field(description="Items per second since the job's latest (re)start.")
    eta_s: float | None = Field(description="Seconds left at that rate; null until known.")
    created: float = Field(description="Unix time.")
    updated: float = Field(description="Unix time.")
    error: str | None = None
    owner: str | None = Field(default=None, description="The submitting API key's name.")


class JobList(BaseModel):
    jobs: list[JobOut]


def _owner(request: Request) -> str | None:
    who = principal_of(request)
    return None if who is None else who.name


def _manager(request: Request) -> JobManager:
    jobs: JobManager | None = request.app.state.jobs  # built by app/main.py
    if jobs is None:
        raise NotReady("jobs are disabled: set PRELABEL_JOBS_DB or PRELABEL_JOBS_ENABLED")
    if not jobs.started:
        raise NotReady("the job store is not open yet")
    return jobs


def _out(st: JobStatus) -> JobOut:
    j = st.job
    return JobOut(
        id=j.id,
        state=j.state,
        task=j.task,
        model=j.model,
        format=j.format,
        total=j.total,
        done=j.done,
        failed=j.failed,
        rate=round(st.rate, 3),
        eta_s=None if st.eta_s is None else round(st.eta_s, 1),
        created=j.created,
        updated=j.updated,
        error=j.error,
        owner=j.owner,
    )


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    summary="Submit a batch job",
    openapi_extra=json_body_doc(JobIn),
)
async def submit(request: Request) -> Response:
    """The body (up to the request body cap, ~13.9 MB for 1,000,000 paths) is parsed and
    validated, and its items checked and stored, on worker threads: the event loop keeps
    serving other requests meanwhile. 429 `too_many_jobs` over the caps on unfinished jobs."""
    jobs = _manager(request)
    s = runtime_of(request).settings
    body = await read_json(request, JobIn, body_cap(s.max_upload_bytes), s.max_job_items + 1000)
    job_id = await jobs.submit(
        JobRequest(
            task=body.task,
            paths=body.items,
            texts=body.texts,
            source=body.source,
            model=body.model,
            format=body.format,
            score_threshold=body.score_threshold,
            owner=_owner(request),
            caller=caller_of(request.scope),
        )
    )
    out = _out(await jobs.status(job_id, principal_of(request)))
    return Response(out.model_dump_json(), status_code=202, media_type="application/json")


@router.get("/jobs", response_model=JobList, summary="The newest jobs, newest first")
async def list_jobs(request: Request, limit: int = Query(100, ge=1, le=1000)) -> Response:
    return json_response(
        JobList(
            jobs=[_out(s) for s in await _manager(request).recent(limit, principal_of(request))]
        )
    )


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A job's state, counts, rate, ETA")
async def get_job(job_id: str, request: Request) -> Response:
    return json_response(_out(await _manager(request).status(job_id, principal_of(request))))


@router.get("/jobs/{job_id}/results", summary="Per-item results, JSON Lines, in key order")
async def results(job_id: str, request: Request) -> StreamingResponse:
    """One line per finished item: `{"key", "ok": true, "result": {...}}` (boxes XYXY pixels,
    masks COCO RLE) or `{"key", "ok": false, "error": "code: message"}`. A running job streams
    what has finished so far."""
    jobs = _manager(request)
    await jobs.status(job_id, principal_of(request))  # 404 before the stream starts
    return StreamingResponse(_lines(jobs.store, job_id), media_type="application/x-ndjson")


def _lines(store: JobBackend, job_id: str) -> Iterator[str]:
    """Read in keyset chunks; Starlette iterates a sync generator on a worker thread."""
    after: str | None = None
    while True:
        rows = store.results(job_id, after, RESULTS_CHUNK)
        if not rows:
            return
        # Payloads are stored as JSON text: spliced in, not parsed and dumped again.
        yield "".join(
            f'{{"key":{json.dumps(r.key)},"ok":true,"result":{r.payload}}}\n'
            if r.ok
            else f'{{"key":{json.dumps(r.key)},"ok":false,"error":{r.payload}}}\n'
            for r in rows
        )
        after = rows[-1].key


@router.get(
    "/jobs/{job_id}/export",
    summary="The finished items as a dataset file (COCO, YOLO, VOC, Label Studio, ...)",
    responses={200: {"content": {"application/json": {}, "application/zip": {}}}},
)
async def export(
    job_id: str,
    request: Request,
    format: str | None = Query(None, description="Default: the job's."),
) -> Response:
    """What `prelabel annotate --format F` writes for the items finished so far: a single file
    (COCO `annotations.json`, Label Studio `tasks.json`, `predictions.jsonl`, CoNLL) or, for the
    per-image formats (YOLO, VOC), a zip of the folder. Failed items are left out."""
    name, data, media = await _manager(request).export(job_id, format, principal_of(request))
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type=media, headers=headers)


@router.delete("/jobs/{job_id}", response_model=JobOut, summary="Cancel a job")
async def cancel(job_id: str, request: Request) -> Response:
    """A queued or running job becomes `cancelled` (its finished items stay); an ended job is
    returned unchanged."""
    return json_response(_out(await _manager(request).cancel(job_id, principal_of(request))))
