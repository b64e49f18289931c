"""Admin-only routes (an `admin` key when authentication is on): DELETE /v1/sam/embeddings."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from app.api.auth import require_admin
from app.api.deps import json_response, runtime_of

router = APIRouter(tags=["admin"])


class PurgeResponse(BaseModel):
    embeddings: int = Field(description="SAM image embeddings dropped.")
    masks: int = Field(description="Low-resolution masks (kept for refinement) dropped.")
    bytes_freed: int


@router.delete(
    "/v1/sam/embeddings",
    response_model=PurgeResponse,
    summary="Purge the SAM embedding and mask caches (admin)",
)
async def purge_embeddings(request: Request) -> Response:
    """Drops every cached embedding and refinement mask of this process (other replicas keep
    theirs). Later embeds and clicks recompute as needed; an encoder run already in flight
    still finishes and stores its result."""
    require_admin(request)
    runtime = runtime_of(request)
    embeddings, masks = runtime.embeddings, runtime.low_res
    out = PurgeResponse(
        embeddings=len(embeddings), masks=len(masks), bytes_freed=embeddings.bytes + masks.bytes
    )
    embeddings.clear()
    masks.clear()
    return json_response(out)
