"""Reading image requests: multipart upload (`file` plus form fields) or JSON with base64, or
in either shape an `image_url` to fetch instead of the bytes.

One function for all, so every image route takes the same shapes and the same limits.
"""

from __future__ import annotations

import binascii
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pydantic_core
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from app.api import offloop
from app.errors import (
    InvalidImage,
    PayloadTooLarge,
    PrelabelError,
    UnsupportedMediaType,
    ValidationFailed,
)

M = TypeVar("M", bound=BaseModel)
Fetch = Callable[[str], Awaitable[bytes]]
"""An image URL -> its bytes (the runtime's SafeFetcher.fetch), raising PrelabelError."""

# Form fields whose values are JSON (lists and objects do not fit a flat form).
JSON_FIELDS = frozenset({"points", "box", "classes"})
# Commas (JSON values) an image route's JSON body may hold: the base64 image has none, points
# and classes a few hundred. Bounds the parse of a hostile body (app/api/offloop.py).
IMAGE_JSON_VALUES = 100_000


def body_cap(max_upload_bytes: int) -> int:
    """The request body cap: a base64 image is 4/3 of the file, plus 1 MiB for other fields."""
    return max_upload_bytes * 4 // 3 + 2**20


def parse_json(raw: bytes | bytearray | str, what: str = "body") -> Any:
    """Parse JSON as RFC 8259 has it, or raise `ValidationFailed` (422).

    Python's `json` accepts NaN and Infinity and lone surrogates ("\\ud800", which no UTF-8
    encoder will write back, so spaCy, tokenizers and our own responses fail on them), and it
    raises RecursionError on deep nesting and ValueError on numbers over 4300 digits: 500s
    where they reach a route. pydantic's parser (jiter) refuses all of these, and invalid UTF-8,
    with a message that says where; nesting is capped at 200 levels.
    """
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as e:
        raise ValidationFailed(f"{what} is not valid JSON: {e}") from e


async def parse_json_off_loop(raw: bytes, what: str = "body") -> Any:
    """`parse_json`, on a worker thread when `raw` is large (app/api/offloop.py)."""
    return await offloop.run(len(raw), lambda: parse_json(raw, what))


class StrictJsonRequest(Request):
    """A request whose `.json()` is `parse_json` (off the loop for large bodies): what FastAPI
    calls to read a JSON body."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = await parse_json_off_loop(await self.body())
        return self._json


async def read_json(request: Request, model: type[M], cap: int, max_values: int) -> M:
    """Read a JSON body of at most `cap` bytes and at most `max_values` values (commas) and
    validate it as `model`, on a worker thread when it is large (app/api/offloop.py). For
    routes that take the Request and declare their body with `json_body_doc`."""
    raw = await _read_capped(request, cap)

    def work() -> M:
        offloop.check_values(raw, max_values)
        doc = parse_json(raw)
        if not isinstance(doc, dict):
            raise ValidationFailed("JSON body must be an object")
        return _validate(model, doc)

    return await offloop.run(len(raw), work)


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a route that reads its JSON body with `read_json`."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inlined(model.model_json_schema())}},
        }
    }


class StrictJsonRoute(APIRoute):
    """Route class for routes whose JSON body FastAPI parses (`APIRouter(route_class=...)`).
    FastAPI wraps the `ValidationFailed` in a 400 `HTTPException`; the error handlers unwrap it
    back to the 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict


def image_body_doc(json_model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a route taking either content type."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "image_url": {"type": "string", "maxLength": 2048},
                        },
                        "description": "`file` (or an `image_url` field) plus any option as a "
                        "form field (lists and objects as JSON).",
                    }
                },
                "application/json": {"schema": _inlined(json_model.model_json_schema())},
            },
        }
    }


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` inlined. pydantic refers to them as "#/$defs/Name", which inside
    the OpenAPI document resolves from the document's root, where there is no `$defs`."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref", "")
        out = walk(defs[ref.removeprefix("#/$defs/")]) if ref.startswith("#/$defs/") else {}
        return out | {k: walk(v) for k, v in node.items() if k != "$ref" or not out}

    inlined: dict[str, Any] = walk(schema)
    return inlined


async def _read_capped(request: Request, cap: int) -> bytearray:
    """The body, at most `cap` bytes, in one buffer sized from Content-Length up front: no
    list of pieces, no regrowth, no final copy (each would be a copy of up to 27 MiB on the
    event loop). pydantic's parser and `bytes.count` take the bytearray as it is."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {cap}")
    body = bytearray(int(declared) if declared and declared.isdigit() else 0)
    n = 0
    async for chunk in request.stream():
        end = n + len(chunk)
        if end > cap:
            raise PayloadTooLarge(f"request body exceeds {cap} bytes")
        if end <= len(body):
            body[n:end] = chunk
        else:  # chunked, or more than declared
            del body[n:]
            body += chunk
        n = end
    del body[n:]
    return body


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValidationFailed(_describe(e)) from e


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


async def read_image_request(
    request: Request,
    model: type[M],
    cap: int,
    image_required: bool = True,
    fetch: Fetch | None = None,
) -> tuple[bytes | None, M]:
    """Return (image bytes or None, validated options). The JSON body's `image` field (base64)
    is removed from the options; multipart takes the image from the `file` part. Instead of
    either, an `image_url` (JSON field or form field) is fetched with `fetch` once the options
    are valid; at most one of the two (exactly one when `image_required`)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        image, url, opts = await _multipart(request, model, cap)
        return await _one_image(image, url, image_required, fetch, "file"), opts
    if ctype in ("application/json", ""):
        raw = await _read_capped(request, cap * 4 // 3 + 65536)  # base64 is 4/3 of the bytes
        if not raw:
            raise InvalidImage("empty request body")

        def work() -> tuple[bytes | None, Any, M]:
            offloop.check_values(raw, IMAGE_JSON_VALUES)
            doc = parse_json(raw)
            if not isinstance(doc, dict):
                raise ValidationFailed("JSON body must be an object")
            encoded = doc.pop("image", None)
            url = doc.pop("image_url", None)
            opts = _validate(model, doc)
            if encoded is not None and url is not None:
                raise ValidationFailed("send either image or image_url, not both")
            return (None if encoded is None else _b64(encoded)), url, opts

        image, url, opts = await offloop.run(len(raw), work)
        return await _one_image(image, url, image_required, fetch, "image"), opts
    raise UnsupportedMediaType(
        f"content type {ctype!r}; send multipart/form-data or application/json"
    )


async def _one_image(
    image: bytes | None, url: Any, required: bool, fetch: Fetch | None, field: str
) -> bytes | None:
    if url is None:
        if image is None and required:
            if field == "image":
                raise ValidationFailed(
                    "image: field required (base64 of the image file), or give image_url"
                )
            raise ValidationFailed(
                "file: an image file part named 'file' (or an image_url field) is required"
            )
        return image
    if image is not None:
        raise ValidationFailed(f"send either {field} or image_url, not both")
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed("image_url: must be a non-empty string")
    if fetch is None:
        raise ValidationFailed("image_url is not accepted on this route")
    return await fetch(url)


async def _multipart(request: Request, model: type[M], cap: int) -> tuple[bytes | None, Any, M]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap + 65536:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {cap}")
    image = None
    fields: dict[str, Any] = {}
    try:
        form_cm = request.form(max_files=1, max_fields=32, max_part_size=cap)
        form = await form_cm
    except PrelabelError:  # the body cap (413), a body deadline (408), admission (429)
        raise
    except Exception as e:  # starlette raises its own MultiPartException / HTTPException
        raise ValidationFailed(f"malformed multipart body: {e}") from e
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "file":
                    raise ValidationFailed(f"unexpected file field {key!r}; use 'file'")
                image = await value.read(cap + 1)
                if len(image) > cap:
                    raise PayloadTooLarge(f"image exceeds {cap} bytes")
            else:
                fields[key] = _form_value(key, value)
    finally:
        await form.close()
    if image is not None and not image:
        raise InvalidImage("the uploaded file is empty")
    url = fields.pop("image_url", None)
    return image, url, _validate(model, fields)


def _form_value(key: str, value: str) -> Any:
    if key not in JSON_FIELDS:
        return value
    try:
        return parse_json(value, key)
    except ValidationFailed:
        if key == "classes":
            return [c.strip() for c in value.split(",") if c.strip()]
        raise


def _b64(encoded: Any) -> bytes:
    if not isinstance(encoded, str):
        raise ValidationFailed("image: must be a base64 string")
    if encoded.startswith("data:"):  # data URLs from browsers
        encoded = encoded.partition(",")[2]
    try:
        data = offloop.b64decode(encoded)
    except (binascii.Error, ValueError) as e:
        raise InvalidImage("image: not valid base64") from e
    if not data:
        raise InvalidImage("image: empty")
    return data
