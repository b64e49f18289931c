"""`create_app(settings)` -> FastAPI. Nothing heavy happens at import; the lifespan owns the
runtime: build, load and warm up the models, serve, then drain the batchers on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
from app.config import Settings
from app.runtime import Runtime


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The HTTP app. Pass `runtime` to share one already built (the CLI and tests do)."""
    rt = runtime or Runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not rt.started:
            await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(
        title="Prelabel",
        version=__version__,
        summary="Model-assisted labeling: boxes, SAM masks and NER spans.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.runtime = rt
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
