"""Task data fetching against a scripted Label Studio (httpx.MockTransport behind the
SafeFetcher, with a fake resolver): which host gets which credentials, the personal-access-token
exchange, and the URL policy on Label Studio's redirects and external URLs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time

import httpx
import pytest

from app.domain.labelstudio.fetch import TaskDataFetcher, on_origin
from app.domain.labelstudio.projects import LsAccess
from app.domain.urls import SafeFetcher, UrlPolicy
from app.errors import BadInput, FetchFailed, PayloadTooLarge, UnsupportedMediaType, UrlBlocked

HOST = "http://ls.example:8080"
PNG = b"\x89PNG\r\n\x1a\n" + b"image-bytes"
DNS = {  # never real DNS; public addresses are only ever answered by the MockTransport
    "ls.example": ["10.0.0.5"],  # Label Studio in-cluster: private, allowed as the LS origin
    "elsewhere.example": ["8.8.4.4"],
    "cdn.example": ["8.8.4.4"],
    "internal.example": ["10.0.0.9"],
    "meta.example": ["169.254.169.254"],
}


def jwt(exp: float, tag: str) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'exp': exp, 'tag': tag})}.c2ln"


class FakeLabelStudio:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.refreshes = 0
        self.valid_access: set[str] = set()
        self.addresses: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization")
        host = request.headers["host"]  # the URL names the pinned address; Host the name
        self.seen.append((f"{request.url.scheme}://{host}{request.url.raw_path.decode()}", auth))
        self.addresses.append(request.url.host)
        if request.url.path == "/api/token/refresh":
            self.refreshes += 1
            access = jwt(time.time() + 300, f"a{self.refreshes}")
            self.valid_access = {access}
            return httpx.Response(200, json={"access": access})
        if host.startswith("ls.example"):
            ok = auth == "Token legacy" or (auth or "").removeprefix("Bearer ") in self.valid_access
            if not ok:
                return httpx.Response(401)
        if request.url.path == "/go":  # a redirect to ?to=
            return httpx.Response(302, headers={"location": request.url.params["to"]})
        if request.url.path.endswith("big.jpg"):
            return httpx.Response(200, content=PNG + b"x" * 5000)
        if request.url.path.endswith("page.jpg"):
            return httpx.Response(200, content=b"<html>", headers={"content-type": "text/html"})
        return httpx.Response(200, content=PNG)


def fetcher(ls: FakeLabelStudio, allow_external: bool = False) -> TaskDataFetcher:
    policy = UrlPolicy(allow_http=True, max_bytes=1000)
    safe = SafeFetcher(
        policy, resolver=lambda host, port: DNS[host], transport=httpx.MockTransport(ls)
    )
    return TaskDataFetcher(safe, allow_external=allow_external)


def test_relative_data_paths_go_to_label_studio_with_the_legacy_token() -> None:
    ls = FakeLabelStudio()
    data = asyncio.run(fetcher(ls).fetch("/data/local-files/?d=images/x.jpg", HOST, "legacy"))
    assert data == PNG
    assert ls.seen == [(f"{HOST}/data/local-files/?d=images/x.jpg", "Token legacy")]
    assert ls.addresses == ["10.0.0.5"]  # private, allowed as the Label Studio origin, pinned


def test_personal_access_token_is_exchanged_cached_and_refreshed_when_refused() -> None:
    ls = FakeLabelStudio()
    f = fetcher(ls)
    pat = jwt(time.time() + 86400, "refresh")

    async def scenario() -> None:
        assert await f.fetch("/data/upload/1/a.jpg", HOST, pat) == PNG
        assert await f.fetch("/data/upload/1/b.jpg", HOST, pat) == PNG
        assert ls.refreshes == 1  # the access token is reused while valid
        ls.valid_access = set()  # Label Studio revokes it
        assert await f.fetch("/data/upload/1/c.jpg", HOST, pat) == PNG
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
    assert data == PNG and ls.seen[-1] == ("http://elsewhere.example/x.jpg", None)
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


def test_redirects_and_external_urls_are_held_to_the_url_policy() -> None:
    ls = FakeLabelStudio()

    def get(ref: str, host: str = HOST, allow_external: bool = False) -> bytes:
        return asyncio.run(fetcher(ls, allow_external).fetch(ref, host, "legacy"))

    # Label Studio sends the client on to storage (a presigned URL): the token stays behind.
    assert get("/go?to=https://cdn.example/img.jpg") == PNG
    assert ls.seen[-2:] == [
        (f"{HOST}/go?to=https://cdn.example/img.jpg", "Token legacy"),
        ("https://cdn.example/img.jpg", None),
    ]
    # Only Label Studio's own origin may be private; a redirect elsewhere gets the full policy.
    with pytest.raises(UrlBlocked, match=r"internal\.example resolves to a private"):
        get("/go?to=http://internal.example/x.jpg")
    with pytest.raises(UrlBlocked, match="private"):
        get("http://internal.example/x.jpg", allow_external=True)
    with pytest.raises(UrlBlocked, match="cloud metadata"):  # not even as Label Studio's host
        get("/data/upload/1/a.jpg", host="http://meta.example")
    with pytest.raises(UnsupportedMediaType):
        get("/data/upload/1/page.jpg")
    assert "10.0.0.9" not in ls.addresses and "169.254.169.254" not in ls.addresses


def storage_label_studio(presign: bool) -> tuple[list[tuple[str, str | None]], httpx.MockTransport]:
    """Label Studio's resolve view (io_storages/proxy_api.py): 303 to a presigned URL on the
    storage's origin when the storage presigns, else the bytes proxied; the storage answers
    only with a signature and never sees the token."""
    seen: list[tuple[str, str | None]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        host = request.headers["host"]
        seen.append(
            (f"{host}{request.url.raw_path.decode()}", request.headers.get("authorization"))
        )
        if host.startswith("ls.example"):
            if request.headers.get("authorization") != "Token legacy":
                return httpx.Response(401)
            m = re.fullmatch(r"/tasks/(\d+)/resolve/", request.url.path)
            if m is None:
                return httpx.Response(404)
            uri = base64.urlsafe_b64decode(request.url.params["fileuri"]).decode()
            if not presign:
                return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
            key = uri.split("://", 1)[1]
            return httpx.Response(
                303, headers={"location": f"https://cdn.example/{key}?X-Amz-Signature=s"}
            )
        if host == "cdn.example" and request.url.params.get("X-Amz-Signature") == "s":
            return httpx.Response(200, content=PNG, headers={"content-type": "binary/octet-stream"})
        return httpx.Response(403)

    return seen, httpx.MockTransport(handle)


@pytest.mark.parametrize(
    "uri", ["s3://bucket/a/x.jpg", "gs://bucket/x.jpg", "azure-blob://c/x.jpg"]
)
@pytest.mark.parametrize("presign", [True, False])
def test_cloud_storage_uris_resolve_through_label_studio(uri: str, presign: bool) -> None:
    seen, transport = storage_label_studio(presign)
    safe = SafeFetcher(
        UrlPolicy(allow_http=True), resolver=lambda h, p: DNS[h], transport=transport
    )
    access = LsAccess(HOST, "legacy", trusted=True)
    assert asyncio.run(TaskDataFetcher(safe).fetch_task(uri, access, 42)) == PNG
    fileuri = base64.urlsafe_b64encode(uri.encode()).decode()
    assert seen[0] == (f"ls.example:8080/tasks/42/resolve/?fileuri={fileuri}", "Token legacy")
    if presign:  # the presigned URL, on the storage's origin, without the token
        assert seen[1][0].startswith("cdn.example/") and seen[1][1] is None
    assert len(seen) == (2 if presign else 1)
    with pytest.raises(BadInput, match="needs an id"):
        asyncio.run(TaskDataFetcher(safe).fetch_task(uri, access, None))


@pytest.mark.parametrize(
    "ref",
    ["/http://elsewhere.example/x.jpg", "//elsewhere.example/x.jpg", "/\\elsewhere.example/x",
     "/\r\nHost: elsewhere.example", "/%2F%2Felsewhere.example/x.jpg", "/@elsewhere.example/x"],
)  # fmt: skip
def test_relative_references_never_leave_the_label_studio_origin(ref: str) -> None:
    ls = FakeLabelStudio()
    with contextlib.suppress(BadInput):  # refused, or fetched from a path on Label Studio
        asyncio.run(fetcher(ls).fetch(ref, HOST, "legacy"))
    assert all(url.startswith(HOST + "/") for url, _ in ls.seen), ls.seen
    assert on_origin(HOST, "/data/upload/1/a.jpg") == HOST + "/data/upload/1/a.jpg"
    with pytest.raises(BadInput):
        on_origin(HOST, "data/upload/1/a.jpg")


def test_an_untrusted_host_is_held_to_the_url_policy_even_for_its_token_refresh() -> None:
    ls = FakeLabelStudio()
    untrusted = LsAccess("http://internal.example", jwt(time.time() + 3600, "r"), trusted=False)
    with pytest.raises(UrlBlocked, match="PRELABEL_LS_ALLOWED_ORIGINS"):
        asyncio.run(fetcher(ls).fetch_task("/data/upload/1/a.jpg", untrusted))
    assert ls.seen == []  # not even POST /api/token/refresh
    trusted = LsAccess("http://internal.example", "legacy", trusted=True)
    asyncio.run(fetcher(ls).fetch_task("/data/upload/1/a.jpg", trusted))
    assert ls.addresses == ["10.0.0.9"]
