"""GET /v1/models, /livez, /readyz, /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import runtime_of
from app.api.schemas import BatchingOut, ModelOut, ModelsResponse
from app.domain.formats.catalogue import KINDS, described
from app.errors import ShuttingDown
from app.inference.manifest import ModelSpec
from app.runtime import Runtime

router = APIRouter(tags=["system"])


@router.get("/v1/models", response_model=ModelsResponse, summary="Configured models")
async def models(request: Request) -> ModelsResponse:
    """Each configured model with its status, the execution provider it actually runs on
    (read from ONNX Runtime, not assumed), and its batching settings."""
    runtime = runtime_of(request)
    out = []
    for st in runtime.registry.states.values():
        spec: ModelSpec = st.spec
        out.append(
            ModelOut(
                name=spec.name,
                task=spec.task,
                version=spec.version,
                status=st.status,
                error=st.error,
                provider=st.provider,
                license=spec.license,
                source=spec.source,
                labels=list(_labels(runtime, spec)),
                load_seconds=st.load_seconds,
                keypoints=list(spec.keypoints) if spec.task == "keypoints" else None,
                skeleton=list(spec.skeleton) if spec.task == "keypoints" else None,
                batching=[
                    BatchingOut(
                        name=b.name,
                        max_batch_size=b.config.max_batch_size,
                        max_wait_ms=b.config.max_wait_ms,
                        max_queue=b.config.max_queue,
                        workers=b.config.workers,
                        queued=b.depth(),
                    )
                    for b in st.batchers
                ],
            )
        )
    return ModelsResponse(
        provider_policy=runtime.settings.provider, onnxruntime=runtime.onnxruntime, models=out
    )


def _labels(runtime: Runtime, spec: ModelSpec) -> tuple[str, ...]:
    loaded = runtime.registry.states[spec.name].loaded
    if loaded is not None and hasattr(loaded, "labels"):
        return tuple(loaded.labels)
    if spec.task == "detect":
        return runtime.manifest.labels(spec)
    return ()


@router.get("/v1/formats", summary="Formats that `format=` accepts")
async def formats() -> dict[str, dict[str, str]]:
    """`image` formats apply to /v1/detect and /v1/sam/segment, `text` ones to /v1/ner, the
    others to /v1/tokens, /v1/ocr and /v1/keypoints (app/domain/formats/catalogue.py)."""
    return {kind: described(kind) for kind in KINDS}


@router.get("/livez", summary="The process is up")
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz", summary="Every configured model is loaded and warmed up")
async def readyz(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    states = {n: s.status for n, s in runtime.registry.states.items()}
    if runtime.draining:  # SIGTERM: out of the load balancer at once, while in-flight work ends
        body = {"error": {"code": ShuttingDown.code, "message": "shutting down"}, "models": states}
        return JSONResponse(body, status_code=503)
    if runtime.ready:
        return JSONResponse({"status": "ready", "models": states})
    problems = [
        s.error or f"model {n!r} is {s.status}"
        for n, s in runtime.registry.states.items()
        if s.status != "ready"
    ]
    message = "; ".join(problems) or "starting"
    body = {"error": {"code": "not_ready", "message": message}, "models": states}
    return JSONResponse(body, status_code=503)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    registry = runtime_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
