"""Reading image requests: multipart upload (`file` plus form fields) or JSON with base64.

One function for both, so every image route takes the same two shapes and the same limits.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from app.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

M = TypeVar("M", bound=BaseModel)

# Form fields whose values are JSON (lists and objects do not fit a flat form).
JSON_FIELDS = frozenset({"points", "box", "classes"})


def image_body_doc(json_model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a route taking either content type."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "description": "`file` plus any option as a form field "
                        "(lists and objects as JSON).",
                    }
                },
                "application/json": {"schema": json_model.model_json_schema()},
            },
        }
    }


async def _read_capped(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {cap}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"request body exceeds {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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
    request: Request, model: type[M], cap: int, image_required: bool = True
) -> tuple[bytes | None, M]:
    """Return (image bytes or None, validated options). The JSON body's `image` field (base64)
    is removed from the options; multipart takes the image from the `file` part."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _multipart(request, model, cap, image_required)
    if ctype in ("application/json", ""):
        raw = await _read_capped(request, cap * 4 // 3 + 65536)  # base64 is 4/3 of the bytes
        if not raw:
            raise InvalidImage("empty request body")
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValidationFailed("body is not valid JSON") from e
        if not isinstance(doc, dict):
            raise ValidationFailed("JSON body must be an object")
        encoded = doc.pop("image", None)
        opts = _validate(model, doc)
        image = None if encoded is None else _b64(encoded)
        if image is None and image_required:
            raise ValidationFailed("image: field required (base64 of the image file)")
        return image, opts
    raise UnsupportedMediaType(
        f"content type {ctype!r}; send multipart/form-data or application/json"
    )


async def _multipart(
    request: Request, model: type[M], cap: int, image_required: bool
) -> tuple[bytes | None, M]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap + 65536:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {cap}")
    image = None
    fields: dict[str, Any] = {}
    try:
        form_cm = request.form(max_files=1, max_fields=32, max_part_size=cap)
        form = await form_cm
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
    if image is None and image_required:
        raise ValidationFailed("file: an image file part named 'file' is required")
    if image is not None and not image:
        raise InvalidImage("the uploaded file is empty")
    return image, _validate(model, fields)


def _form_value(key: str, value: str) -> Any:
    if key not in JSON_FIELDS:
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if key == "classes":
            return [c.strip() for c in value.split(",") if c.strip()]
        raise ValidationFailed(f"{key}: form value must be JSON") from None


def _b64(encoded: Any) -> bytes:
    if not isinstance(encoded, str):
        raise ValidationFailed("image: must be a base64 string")
    if encoded.startswith("data:"):  # data URLs from browsers
        encoded = encoded.partition(",")[2]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidImage("image: not valid base64") from e
    if not data:
        raise InvalidImage("image: empty")
    return data
