"""GET /v1/models, /livez, /readyz, /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import RuntimeDep
from app.api.schemas import BatchingOut, ModelOut, ModelsResponse
from app.inference.manifest import ModelSpec

router = APIRouter(tags=["system"])


@router.get("/v1/models", response_model=ModelsResponse, summary="Configured models")
async def models(runtime: RuntimeDep) -> ModelsResponse:
    """Each configured model with its status, the execution provider it actually runs on
    (read from ONNX Runtime, not assumed), and its batching settings."""
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


def _labels(runtime: RuntimeDep, spec: ModelSpec) -> tuple[str, ...]:
    loaded = runtime.registry.states[spec.name].loaded
    if loaded is not None and hasattr(loaded, "labels"):
        return tuple(loaded.labels)
    if spec.task == "detect":
        return runtime.manifest.labels(spec)
    return ()


@router.get("/livez", summary="The process is up")
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz", summary="Every configured model is loaded and warmed up")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    states = {n: s.status for n, s in runtime.registry.states.items()}
    if runtime.ready:
        return JSONResponse({"status": "ready", "models": states})
    problems = [
        s.error or f"model {n!r} is {s.status}" for n, s in runtime.registry.states.items()
        if s.status != "ready"
    ]
    message = "; ".join(problems) or "starting"
    body = {"error": {"code": "not_ready", "message": message}, "models": states}
    return JSONResponse(body, status_code=503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
