"""Task data fetching against a scripted Label Studio (httpx.MockTransport): which host gets
which credentials, and the personal-access-token exchange."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest

from app.domain.ls_fetch import FetchFailed, TaskDataFetcher
from app.errors import BadInput, PayloadTooLarge

HOST = "http://ls.example:8080"


def jwt(exp: float, tag: str) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'exp': exp, 'tag': tag})}.c2ln"


class FakeLabelStudio:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.refreshes = 0
        self.valid_access: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization")
        self.seen.append((str(request.url), auth))
        if request.url.path == "/api/token/refresh":
            self.refreshes += 1
            access = jwt(time.time() + 300, f"a{self.refreshes}")
            self.valid_access = {access}
            return httpx.Response(200, json={"access": access})
        if request.url.host == "ls.example":
            ok = auth == "Token legacy" or (auth or "").removeprefix("Bearer ") in self.valid_access
            if not ok:
                return httpx.Response(401)
        if request.url.path.endswith("big.jpg"):
            return httpx.Response(200, content=b"x" * 5000)
        return httpx.Response(200, content=b"image-bytes")


def fetcher(ls: FakeLabelStudio, allow_external: bool = False) -> TaskDataFetcher:
    client = httpx.AsyncClient(transport=httpx.MockTransport(ls))
    return TaskDataFetcher(client, max_bytes=1000, allow_external=allow_external)


def test_relative_data_paths_go_to_label_studio_with_the_legacy_token() -> None:
    ls = FakeLabelStudio()
    data = asyncio.run(fetcher(ls).fetch("/data/local-files/?d=images/x.jpg", HOST, "legacy"))
    assert data == b"image-bytes"
    assert ls.seen == [(f"{HOST}/data/local-files/?d=images/x.jpg", "Token legacy")]


def test_personal_access_token_is_exchanged_cached_and_refreshed_when_refused() -> None:
    ls = FakeLabelStudio()
    f = fetcher(ls)
    pat = jwt(time.time() + 86400, "refresh")

    async def scenario() -> None:
        assert await f.fetch("/data/upload/1/a.jpg", HOST, pat) == b"image-bytes"
        assert await f.fetch("/data/upload/1/b.jpg", HOST, pat) == b"image-bytes"
        assert ls.refreshes == 1  # the access token is reused while valid
        ls.valid_access = set()  # Label Studio revokes it
        assert await f.fetch("/data/upload/1/c.jpg", HOST, pat) == b"image-bytes"
        assert ls.refreshes == 2

    asyncio.run(scenario())
    data_auth = [a for url, a in ls.seen if "/data/" in url]
    assert all(a is not None and a.startswith("Bearer ") for a in data_auth)


def test_credentials_never_leave_the_label_studio_host() -> None:
    ls = FakeLabelStudio()
    with pytest.raises(BadInput, match="another host"):
        asyncio.run(fetcher(ls).fetch("http://elsewhere.example/x.jpg", HOST, "legacy"))
    data = asyncio.run(
        fetcher(ls, allow_external=True).fetch("http://elsewhere.example/x.jpg", HOST, "legacy")
    )
    assert data == b"image-bytes" and ls.seen[-1] == ("http://elsewhere.example/x.jpg", None)
    asyncio.run(fetcher(ls).fetch(f"{HOST}/data/upload/2/y.jpg", HOST, "legacy"))
    assert ls.seen[-1][1] == "Token legacy"  # an absolute URL on the same host is fine


def test_bad_references_and_limits() -> None:
    ls = FakeLabelStudio()
    f = fetcher(ls)
    for ref, host, err in (
        ("/data/upload/1/a.jpg", None, BadInput),
        ("file:///etc/passwd", HOST, BadInput),
        ("/data/upload/1/big.jpg", HOST, PayloadTooLarge),
    ):
        with pytest.raises(err):
            asyncio.run(f.fetch(ref, host, "legacy"))
    with pytest.raises(FetchFailed, match="refused"):
        asyncio.run(f.fetch("/data/upload/1/a.jpg", HOST, "wrong"))
