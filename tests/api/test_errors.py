"""Every kind of bad input gets a 4xx with a JSON error body, and the server keeps serving."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import runtime_of


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def bad_requests(jpeg: bytes) -> list[tuple[str, str, dict[str, object], int, str]]:
    b64 = base64.b64encode(jpeg).decode()
    f = "files"
    return [
        ("/v1/detect", f, {"file": ("x.jpg", b"", "image/jpeg")}, 400, "invalid_image"),
        (
            "/v1/detect",
            f,
            {"file": ("x.jpg", jpeg[: len(jpeg) // 2], "image/jpeg")},
            400,
            "invalid_image",
        ),
        (
            "/v1/detect",
            f,
            {"file": ("x.txt", b"hello, not an image", "text/plain")},
            415,
            "unsupported_media_type",
        ),
        (
            "/v1/detect",
            f,
            {"file": ("x.png", png_header(100_000, 100_000), "image/png")},
            413,
            "payload_too_large",
        ),
        (
            "/v1/detect",
            f,
            {"file": ("x.png", png_header(8000, 6000), "image/png")},
            413,
            "payload_too_large",
        ),
        ("/v1/detect", "json", {"image": "###"}, 400, "invalid_image"),
        ("/v1/detect", "json", {"image": b64, "unknown_field": 1}, 422, "validation_error"),
        ("/v1/detect", "json", {"image": b64, "score_threshold": "high"}, 422, "validation_error"),
        ("/v1/detect", "json", {"image": b64, "score_threshold": 2}, 422, "validation_error"),
        ("/v1/detect", "json", {"image": b64, "model": "no-such-model"}, 404, "unknown_model"),
        ("/v1/detect", "json", {"image": b64, "model": "minisam"}, 404, "unknown_model"),
        ("/v1/detect", "json", {"score_threshold": 0.5}, 422, "validation_error"),
        ("/v1/sam/embed", f, {"file": ("x.jpg", jpeg[:300], "image/jpeg")}, 400, "invalid_image"),
        ("/v1/sam/embed", "json", {"image": b64, "model": "nanodet-g"}, 404, "unknown_model"),
        (
            "/v1/sam/segment",
            "json",
            {"embedding_id": "nope", "points": [{"x": 1, "y": 1}]},
            404,
            "unknown_model",
        ),
    ]


@pytest.mark.parametrize("case", range(15))
def test_bad_input_then_good_input(client: TestClient, astronaut_jpeg: bytes, case: int) -> None:
    route, kind, payload, status, code = bad_requests(astronaut_jpeg)[case]
    r = client.post(route, **{kind: payload})  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    assert "Traceback" not in r.text
    ok = client.post("/v1/detect", files={"file": ("a.jpg", astronaut_jpeg, "image/jpeg")})
    assert ok.status_code == 200


def test_raw_bodies_and_wrong_content_types(client: TestClient, astronaut_jpeg: bytes) -> None:
    cases: list[tuple[dict[str, Any], int]] = [
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
        ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 422),
        ({"content": astronaut_jpeg, "headers": {"content-type": "image/jpeg"}}, 415),
        (
            {
                "content": b"--x\r\nbroken",
                "headers": {"content-type": "multipart/form-data; boundary=x"},
            },
            422,
        ),
        ({"files": {"upload": ("a.jpg", astronaut_jpeg, "image/jpeg")}}, 422),
    ]
    for kwargs, status in cases:
        r = client.post("/v1/detect", **kwargs)
        assert r.status_code == status, (kwargs.get("headers"), r.text)
        assert set(r.json()["error"]) == {"code", "message"}
    assert client.get("/no/such/route").json()["error"]["code"] == "not_found"
    assert client.get("/v1/detect").status_code == 405
    assert client.post("/v1/detect", files={"file": ("a.jpg", astronaut_jpeg)}).status_code == 200


def test_upload_over_the_byte_limit_is_413(client: TestClient) -> None:
    limit = runtime_of(client).settings.max_upload_bytes
    big = b"\xff\xd8\xff" + b"\0" * limit
    r = client.post("/v1/detect", files={"file": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_oversized_json_body_is_refused_before_it_is_read(client: TestClient) -> None:
    limit = runtime_of(client).settings.max_upload_bytes
    body = b'{"texts": ["' + b"a" * (limit * 2) + b'"]}'
    r = client.post("/v1/ner", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert client.post("/v1/ner", json={"texts": ["Paris"]}).status_code == 200


def test_oversized_chunked_body_is_413_too(client: TestClient, astronaut_jpeg: bytes) -> None:
    limit = runtime_of(client).settings.max_upload_bytes
    chunk = b"a" * 1024 * 1024

    def stream() -> Iterator[bytes]:
        yield b'{"texts": ["'
        for _ in range(limit * 2 // len(chunk)):
            yield chunk
        yield b'"]}'

    for route in ("/v1/ner", "/v1/detect"):
        r = client.post(route, content=stream(), headers={"content-type": "application/json"})
        assert r.status_code == 413, (route, r.text)
        assert r.json()["error"]["code"] == "payload_too_large"
