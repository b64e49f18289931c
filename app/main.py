"""`create_app(settings)` -> FastAPI. Nothing heavy happens at import; the lifespan owns the
runtime and the job manager: build, load and warm up the models, resume the jobs, serve; on
shutdown stop the jobs (their finished items are checkpointed) before the runtime drains the
batchers, so no job item arrives at a draining batcher.

This is the composition root above both: `app.batch` depends on `app.runtime`, never the
reverse (the import contract in pyproject.toml keeps it so)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from app import __version__
from app.api import auth, errors, ratelimit
from app.api.access import RequestContextMiddleware
from app.api.admission import AdmissionMiddleware
from app.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from app.api.routes import (
    admin,
    classify,
    detect,
    jobs,
    keypoints,
    labelstudio,
    ner,
    ocr,
    projects,
    rank,
    sam,
    system,
    tokens,
)
from app.api.schemas import ERROR_RESPONSES
from app.batch.jobs import JobManager
from app.config import Settings
from app.runtime import Runtime


def build_jobs(rt: Runtime) -> JobManager | None:
    """The service's job manager on `rt`, or None when jobs are off: `PRELABEL_JOBS_ENABLED`
    decides, unset meaning "on when `PRELABEL_JOBS_DB` is set" (a DSN alone does not turn jobs
    on). The store is PostgreSQL at `PRELABEL_STATE_DSN` when set, else SQLite at
    `PRELABEL_JOBS_DB`."""
    s = rt.settings
    on = s.jobs_enabled if s.jobs_enabled is not None else s.jobs_db is not None
    if not on:
        return None
    dsn = s.state_dsn.get_secret_value() if s.state_dsn is not None else None
    db = s.jobs_db if s.jobs_db is not None else Path("jobs.db")  # unused with a DSN
    return JobManager(rt, db, s.job_input_roots, s.job_concurrency, dsn=dsn)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The HTTP app. Pass `runtime` to share one already built (the CLI and tests do)."""
    rt = runtime or Runtime(settings or Settings())
    job_manager = build_jobs(rt)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not rt.started:
            await rt.start()
        if job_manager is not None and rt.started:  # no onnxruntime: no models, no jobs
            await job_manager.start()
        try:
            yield
        finally:
            if job_manager is not None:
                await job_manager.stop()  # before the batchers drain: job items stop arriving
            await rt.stop()

    app = FastAPI(
        title="Prelabel",
        version=__version__,
        summary="Model-assisted labeling: boxes, SAM masks and NER spans.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.runtime = rt
    app.state.jobs = job_manager  # app/api/routes/jobs.py; None when jobs are off
    errors.install(app)
    routers = (
        *(detect, sam, ner, tokens, ocr, keypoints),
        *(classify, rank, projects, system, labelstudio, jobs, admin),
    )
    for module in routers:
        app.include_router(module.router)
    # Every body, JSON or multipart, is capped before it is read: a base64 image is 4/3 of the
    # file, plus room for the other fields.
    app.add_middleware(BodyLimitMiddleware, max_bytes=rt.settings.max_upload_bytes * 4 // 3 + 2**20)
    # In-flight cap (429) and, after SIGTERM, 503 for new requests (app/api/admission.py).
    app.add_middleware(AdmissionMiddleware, runtime=rt)
    # Added innermost first. Outermost: request id + access log, then metrics, then auth
    # (401/403 before any body is read), then the per-key rate limit (it needs the principal).
    ratelimit.install(app, rt.settings)
    auth.install(app, rt.settings)
    app.add_middleware(MetricsMiddleware, metrics=rt.metrics)
    app.add_middleware(RequestContextMiddleware)
    return app
