"""The URL policy and SafeFetcher against local servers on 127.0.0.1 (the forbidden targets)
and a fake resolver (never real DNS); public addresses appear only behind httpx.MockTransport,
so nothing leaves the machine."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trustme

from app.config import Settings
from app.domain.urls import SafeFetcher, UrlPolicy, sniff_image
from app.domain.urls.addresses import address_class
from app.errors import (
    FetchFailed,
    FetchTimeout,
    InvalidImage,
    PayloadTooLarge,
    UnsupportedMediaType,
    UrlBlocked,
)
from tests.conftest import png_bytes
from tests.local_http import Handler, LocalServer, LoopbackOnly, Route, send

T = TypeVar("T")
ASTRONAUT = png_bytes("astronaut.png")
HTML = b"<!doctype html><html><body>not an image</body></html>"
LOCAL = (ipaddress.ip_network("127.0.0.1/32"),)
PUBLIC = "8.8.4.4"  # only ever answered by a MockTransport


class FakeDns:
    """name -> addresses; a list of answers is given out in turn (the last one repeats)."""

    def __init__(self, names: Mapping[str, list[str] | list[list[str]]]) -> None:
        self.names = dict(names)  # a test may change its own copy
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        answer = self.names.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        if answer and isinstance(answer[0], list):
            turn = min(self.calls.count(host), len(answer)) - 1
            return answer[turn]
        return answer  # type: ignore[return-value]


def run(fetcher: SafeFetcher, call: Callable[[SafeFetcher], Awaitable[T]]) -> T:
    async def go() -> T:
        try:
            return await call(fetcher)
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def fetch(fetcher: SafeFetcher, url: str) -> bytes:
    return run(fetcher, lambda f: f.fetch(url))


def local_fetcher(dns: FakeDns | None = None, **policy: Any) -> SafeFetcher:
    """http allowed and 127.0.0.1 exempt, as PRELABEL_URL_ALLOWED_NETWORKS=127.0.0.1/32 does;
    connections only to loopback, whatever the policy says (see LoopbackOnly)."""
    opts: dict[str, Any] = {"allow_http": True, "allowed_networks": LOCAL, **policy}
    dns = dns or FakeDns({"img.test": ["127.0.0.1"]})
    return SafeFetcher(UrlPolicy(**opts), resolver=dns, transport=LoopbackOnly())


def redirect(h: Handler) -> None:
    n = int(h.path.rsplit("/", 1)[1])  # n redirects to come
    send(h, 302, headers={"Location": f"/redirect/{n - 1}" if n > 1 else "/astronaut.png"})


def redirect_to(h: Handler) -> None:
    send(h, 302, headers={"Location": parse_qs(urlsplit(h.path).query)["u"][0]})


def chunked_big(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/png")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for _ in range(4):
        h.wfile.write(b"400\r\n" + b"\x89" * 1024 + b"\r\n")
    h.wfile.write(b"0\r\n\r\n")


def hang(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/png")
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.flush()
    h.server.owner.release.wait()


def trickle(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/png")
    h.send_header("Content-Length", "1000000")
    h.end_headers()
    h.wfile.write(b"\x89PNG")
    while not h.server.owner.release.wait(0.01):  # a byte at a time, well inside read timeout
        try:
            h.wfile.write(b"\x00")
            h.wfile.flush()
        except OSError:
            return


ROUTES: dict[str, Route] = {
    "/astronaut.png": lambda h: send(h, 200, ASTRONAUT, "image/png"),
    "/octet": lambda h: send(h, 200, ASTRONAUT),
    "/untyped": lambda h: send(h, 200, ASTRONAUT, None),
    "/page": lambda h: send(h, 200, HTML, "text/html; charset=utf-8"),
    "/html.jpg": lambda h: send(h, 200, HTML, "image/jpeg"),
    "/empty": lambda h: send(h, 200, b"", "image/png"),
    "/chunked-big": chunked_big,
    "/hang": hang,
    "/trickle": trickle,
    "/to": redirect_to,
    **{f"/redirect/{n}": redirect for n in range(1, 6)},
}


@pytest.fixture
def server() -> Any:
    with LocalServer(ROUTES) as s:
        yield s


# Every blocked class, as literals, odd IPv4 spellings and DNS names. `{port}` is the local
# server's: if a check let one through, the server would record a hit.
BLOCKED = [
    ("http://127.0.0.1:{port}/astronaut.png", "127.0.0.1 is a loopback address"),
    ("http://127.8.9.10:{port}/", "loopback"),
    ("http://127.0.0.1.:{port}/", "loopback"),
    ("http://[::1]:{port}/", "loopback"),
    ("http://0.0.0.0:{port}/", "unspecified"),
    ("http://[::]:{port}/", "unspecified"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://192.0.2.1/", "private"),
    ("http://0.1.2.3/", "private"),
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[ff0e::1]/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[100::1]/", "reserved"),
    ("http://[fc00::1]/", "unique-local"),
    ("http://[fd12:3456::1]/", "unique-local"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[2001:db8::1]/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://169.254.170.2/v2/credentials", "cloud metadata"),
    ("http://[fd00:ec2::254]/", "cloud metadata"),
    ("http://100.100.100.200/", "cloud metadata"),
    ("http://[::ffff:127.0.0.1]:{port}/", "loopback"),
    ("http://[::ffff:7f00:1]:{port}/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[::127.0.0.1]:{port}/", "loopback"),
    ("http://[64:ff9b::7f00:1]/", "loopback"),
    ("http://[64:ff9b::a00:1]/", "private"),
    ("http://[64:ff9b:1::a00:1]/", "reserved"),  # local-use NAT64: never unwrapped
    ("http://[2002:7f00:1::]/", "loopback"),
    ("http://2130706433:{port}/", "dotted-quad"),
    ("http://017700000001:{port}/", "dotted-quad"),
    ("http://0x7f000001:{port}/", "dotted-quad"),
    ("http://0x7f.1:{port}/", "dotted-quad"),
    ("http://0177.0.0.1:{port}/", "dotted-quad"),
    ("http://127.1:{port}/", "dotted-quad"),
    ("http://loopback.example:{port}/", "loopback.example resolves to a loopback address"),
    ("http://LOOPBACK.example.:{port}/", "resolves to a loopback"),
    ("http://v6.example:{port}/", "resolves to a loopback"),
    ("http://mapped.example:{port}/", "resolves to a loopback"),
    ("http://private.example/", "private.example resolves to a private address"),
    ("http://metadata.example/", "resolves to a cloud metadata address"),
    ("http://mixed.example/", "resolves to a private address"),  # one bad answer is enough
]
NAMES: dict[str, list[str]] = {
    "loopback.example": ["127.0.0.1"],
    "v6.example": ["::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "private.example": ["10.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": [PUBLIC, "10.0.0.1"],
}


@pytest.mark.parametrize(("url", "reason"), BLOCKED)
def test_every_blocked_address_class_is_refused_before_connecting(
    server: LocalServer, url: str, reason: str
) -> None:
    dns = FakeDns(NAMES)
    guard = LoopbackOnly()
    f = SafeFetcher(UrlPolicy(allow_http=True), resolver=dns, transport=guard)
    with pytest.raises(UrlBlocked) as e:
        fetch(f, url.format(port=server.port))
    assert reason in e.value.message
    assert e.value.status == 422 and e.value.code == "url_blocked"
    assert server.hits == [] and guard.off_machine == []
    if dns.calls:  # a name: the message gives the class, never the address it resolved to
        assert not any(a in e.value.message for a in ("127.0.0.1", "10.0.0.1", "169.254", "::1"))


def test_public_addresses_pass_also_inside_ipv6_forms() -> None:
    public = ("8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1")
    for a in public:
        assert address_class(ipaddress.ip_address(a)) is None, a


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_GET",
        "ftp://ftp.example/x.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "ws://img.example/",
        "//img.example/x.jpg",
        "img.example/x.jpg",
        "http://user:pass@img.example/x.jpg",
        "http://user@img.example/x.jpg",
        "http://:pass@img.example/x.jpg",
        "http:///x.jpg",
        "http://[not-v6]/x.jpg",
        "http://img.example:99999/x.jpg",
        "http://img.example/" + "a" * 3000,
    ],
)
def test_non_http_schemes_userinfo_and_malformed_urls_are_refused_without_dns(url: str) -> None:
    dns = FakeDns({"img.example": [PUBLIC]})
    with pytest.raises(UrlBlocked):
        fetch(SafeFetcher(UrlPolicy(allow_http=True), resolver=dns), url)
    assert dns.calls == []


class Recorder:
    """A MockTransport handler: answers PNG bytes (or scripted responses) and records what it
    was asked to connect to."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.responses:
            return self.responses.pop(0)
        return httpx.Response(200, content=ASTRONAUT, headers={"content-type": "image/png"})


def mocked(dns: FakeDns, recorder: Recorder, **policy: Any) -> SafeFetcher:
    transport = httpx.MockTransport(recorder)
    return SafeFetcher(UrlPolicy(**policy), resolver=dns, transport=transport)


def test_https_only_by_default_and_the_host_allow_list() -> None:
    dns = FakeDns({h: [PUBLIC] for h in ("img.example", "a.cdn.example", "x.y.cdn.example")})
    with pytest.raises(UrlBlocked, match="use https"):
        fetch(mocked(dns, Recorder()), "http://img.example/x.png")
    hosts = ("img.example", "*.cdn.example")
    for url in ("https://img.example/x", "https://a.cdn.example/x", "https://x.y.cdn.example/x"):
        assert fetch(mocked(dns, Recorder(), allowed_hosts=hosts), url) == ASTRONAUT
    for url in ("https://cdn.example/", "https://evilcdn.example/", "https://img.example.evil/"):
        with pytest.raises(UrlBlocked, match="PRELABEL_URL_ALLOWED_HOSTS"):
            fetch(mocked(dns, Recorder(), allowed_hosts=hosts), url)
    dns.names["img.example"] = ["10.0.0.1"]  # an allowed host still needs public addresses
    with pytest.raises(UrlBlocked, match="private"):
        fetch(mocked(dns, Recorder(), allowed_hosts=hosts), "https://img.example/x")


def test_connects_to_the_validated_address_so_dns_rebinding_cannot_swap_it() -> None:
    dns = FakeDns({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    rec = Recorder()
    assert fetch(mocked(dns, rec), "https://rebind.example/a.png?x=1") == ASTRONAUT
    [req] = rec.requests
    assert (req.url.host, req.url.path, req.url.query) == (PUBLIC, "/a.png", b"x=1")
    assert req.headers["host"] == "rebind.example"
    assert req.extensions["sni_hostname"] == "rebind.example"  # TLS checks the real name
    assert dns.calls == ["rebind.example"]  # resolved once; the second answer is never used

    # A redirect back to the same name is a new hop: resolved and checked again.
    dns = FakeDns({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    rec = Recorder(httpx.Response(302, headers={"location": "/b.png"}))
    with pytest.raises(UrlBlocked, match="loopback"):
        fetch(mocked(dns, rec), "https://rebind.example/a.png")
    assert len(rec.requests) == 1


def test_a_local_address_passes_only_through_allowed_networks_and_metadata_never(
    server: LocalServer,
) -> None:
    for path in ("/astronaut.png", "/octet", "/untyped"):
        assert fetch(local_fetcher(), server.url(path, "img.test")) == ASTRONAUT
    assert server.hits[0][1]["host"] == f"img.test:{server.port}"
    wide = (ipaddress.ip_network("169.254.0.0/16"),)
    dns = FakeDns({"meta.test": ["169.254.169.254"]})
    with pytest.raises(UrlBlocked, match="cloud metadata"):
        fetch(local_fetcher(dns, allowed_networks=wide), "http://meta.test/")
    settings = Settings(url_allowed_networks="127.0.0.1/32", url_allow_http=True)
    policy = UrlPolicy.from_settings(settings)
    assert policy.allowed_networks == LOCAL and policy.allow_http
    f = SafeFetcher(policy, resolver=FakeDns({}))
    assert fetch(f, server.url("/astronaut.png")) == ASTRONAUT


def test_falls_back_to_the_next_validated_address_when_one_refuses(server: LocalServer) -> None:
    dns = FakeDns({"img.test": ["127.0.0.2", "127.0.0.1"]})  # nothing listens on 127.0.0.2
    f = local_fetcher(dns, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    assert fetch(f, server.url("/astronaut.png", "img.test")) == ASTRONAUT


def test_redirects_are_followed_at_most_three_times_each_hop_rechecked(server: LocalServer) -> None:
    assert fetch(local_fetcher(), server.url("/redirect/3")) == ASTRONAUT
    server.hits.clear()
    with pytest.raises(FetchFailed, match="more than 3"):
        fetch(local_fetcher(), server.url("/redirect/4"))
    assert [p for p, _ in server.hits] == [
        "/redirect/4",
        "/redirect/3",
        "/redirect/2",
        "/redirect/1",
    ]
    dns = FakeDns({"private.test": ["10.0.0.1"], "img.test": ["127.0.0.1"]})
    for target, reason in (
        ("http://10.0.0.1/x.png", "private"),
        ("http://private.test/x.png", r"private\.test resolves to a private"),
        (f"http://[::1]:{server.port}/astronaut.png", "loopback"),
        (f"http://127.0.0.2:{server.port}/astronaut.png", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("file:///etc/passwd", "scheme"),
        ("http://user:pw@img.test/", "credentials"),
    ):
        server.hits.clear()
        with pytest.raises(UrlBlocked, match=reason):
            fetch(local_fetcher(dns), server.url(f"/to?u={target}", "img.test"))
        assert len(server.hits) == 1  # the redirecting hop only


def test_authorization_goes_only_to_the_origin_it_was_given_for(server: LocalServer) -> None:
    dns = FakeDns({"img.test": ["127.0.0.1"], "cdn.test": ["127.0.0.1"]})
    auth = {"Authorization": "Token secret"}
    same = server.url("/to?u=/astronaut.png", "img.test")
    other = server.url(f"/to?u={server.url('/astronaut.png', 'cdn.test')}", "img.test")
    for url in (same, other):
        r = run(local_fetcher(dns), lambda f, url=url: f.request("GET", url, headers=auth))  # type: ignore[misc]
        assert r.status == 200 and r.body == ASTRONAUT
    assert [h.get("authorization") for _, h in server.hits] == ["Token secret"] * 3 + [None]
    assert server.hits[-1][1]["host"] == f"cdn.test:{server.port}"


def test_size_cap_while_streaming_and_with_a_declared_length(server: LocalServer) -> None:
    for path in ("/astronaut.png", "/chunked-big"):
        with pytest.raises(PayloadTooLarge):
            fetch(local_fetcher(max_bytes=2048), server.url(path))


def test_a_stalled_body_hits_the_read_timeout_and_a_trickle_the_total_deadline(
    server: LocalServer,
) -> None:
    with pytest.raises(FetchTimeout, match="read timeout") as e:
        fetch(local_fetcher(read_timeout_s=0.2), server.url("/hang"))
    assert e.value.status == 504
    with pytest.raises(FetchTimeout, match="longer than"):
        fetch(local_fetcher(read_timeout_s=30, total_timeout_s=0.3), server.url("/trickle"))


def test_content_type_and_magic_bytes(server: LocalServer) -> None:
    with pytest.raises(UnsupportedMediaType, match="text/html"):
        fetch(local_fetcher(), server.url("/page"))
    with pytest.raises(UnsupportedMediaType, match="not a JPEG, PNG"):
        fetch(local_fetcher(), server.url("/html.jpg"))  # HTML served as image/jpeg
    with pytest.raises(InvalidImage):
        fetch(local_fetcher(), server.url("/empty"))
    with pytest.raises(FetchFailed, match="answered 404"):
        fetch(local_fetcher(), server.url("/missing.png"))
    with pytest.raises(FetchFailed, match="cannot resolve"):
        fetch(local_fetcher(), "http://unknown.test/x.png")
    assert sniff_image(ASTRONAUT) == "PNG"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff_image(b"\xff\xd8\xff\xe0") == "JPEG" and sniff_image(HTML) is None


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_https_to_the_pinned_address_verifies_the_certificate_for_the_real_name(
    ca: trustme.CA,
) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("img.test").configure_cert(tls)
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    dns = FakeDns({"img.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})

    def fetcher() -> SafeFetcher:
        return SafeFetcher(UrlPolicy(allowed_networks=LOCAL), resolver=dns, verify=trust)

    with LocalServer(ROUTES) as plain, LocalServer(ROUTES, tls=tls) as server:
        assert fetch(fetcher(), server.url("/astronaut.png", "img.test")) == ASTRONAUT
        assert server.hits[-1][1]["host"] == f"img.test:{server.port}"
        with pytest.raises(FetchFailed):  # same address, but the certificate is not for it
            fetch(fetcher(), server.url("/astronaut.png", "other.test"))
        down = plain.url("/astronaut.png", "img.test")
        f = SafeFetcher(
            UrlPolicy(allow_http=True, allowed_networks=LOCAL), resolver=dns, verify=trust
        )
        with pytest.raises(UrlBlocked, match="from https to http"):
            fetch(f, server.url(f"/to?u={down}", "img.test"))
        assert plain.hits == []
