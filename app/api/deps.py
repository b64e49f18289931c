"""What routes take from the app: the runtime, the lane, and the JSON response helper.

Routes read the runtime straight from `request.app.state` rather than through `Depends`: the
dependency solver measured ~9% of the GIL-holding time of a loaded detect route (py-spy, 16
concurrent clients on 2 cores), and these routes have no dependency worth injecting.
"""

from __future__ import annotations

from fastapi import Request, Response
from pydantic import BaseModel

from app.inference.batcher import Lane
from app.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def lane(priority: str) -> Lane:
    return Lane.BULK if priority == "bulk" else Lane.INTERACTIVE


def json_response(body: BaseModel) -> Response:
    """Serialise a response model once, in pydantic's Rust core. Returning the model itself
    would make FastAPI dump it and validate it again against `response_model` (which the routes
    still declare, for the OpenAPI schema)."""
    return Response(body.model_dump_json(), media_type="application/json")
