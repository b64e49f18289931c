"""The one fetch function for untrusted URLs.

Every hop goes: parse and check the URL (policy.py) -> resolve the host off the event loop ->
refuse the hop if ANY resolved address is not public (addresses.py; a name that mixes public and
private answers is treated as hostile rather than trimmed) -> connect to the validated address
itself, with the original `Host` header and, for https, the original name as TLS SNI and for
certificate verification (httpcore's `sni_hostname` extension), so a second DNS answer can never
swap the address (DNS rebinding) -> on a redirect, start again from the top for the new URL (at
most `max_redirects` hops; https -> http refused; `Authorization` and cookies dropped once the
origin changes). Bodies are capped at `max_bytes` while streaming; `total_timeout_s` bounds the
whole fetch.

Requests go straight to an httpx transport, not an `AsyncClient`: no cookie jar shared between
requests, no proxy from the environment (a proxy would do its own resolution), no automatic
redirects. https connections are not kept alive: httpcore pools connections by origin, which
is the address here, and reusing a connection verified for one name for another would skip that
name's certificate check.

`trusted_origin` (the configured Label Studio, usually in-cluster) exempts that one origin from
the scheme rule, the host allow-list and the address classes, except cloud metadata addresses;
it is still resolved once per hop, pinned and redirect-checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx

from app.domain.urls.addresses import IPAddress, address_class, blocked_reason
from app.domain.urls.content import check_image
from app.domain.urls.policy import Target, UrlPolicy, check_target, parse_target, short
from app.errors import FetchFailed, FetchTimeout, PayloadTooLarge, UrlBlocked

Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> IP address strings, in the order to try them. Blocking: run on a thread."""

REDIRECTS = frozenset({301, 302, 303, 307, 308})
IMAGE_ACCEPT = "image/*, application/octet-stream;q=0.8"
USER_AGENT = "prelabel"
_ORIGIN_BOUND = frozenset({"authorization", "cookie", "proxy-authorization"})


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, deduplicated, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Fetched:
    """A final (non-redirect) answer. `url` is the last hop as named (never the address);
    `content_type` is lower case without parameters, "" when absent; `body` is read only for
    2xx answers, at most `max_bytes`."""

    url: str
    status: int
    content_type: str
    body: bytes


class SafeFetcher:
    """One per process (built in app/runtime.py). `resolver` and `transport` are injectable for
    tests; `verify` is httpx's TLS verification (True, or an `ssl.SSLContext`)."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self._plain = transport or httpx.AsyncHTTPTransport(verify=verify, trust_env=False)
        self._tls = transport or httpx.AsyncHTTPTransport(
            verify=verify, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
        )

    async def fetch(self, url: str) -> bytes:
        """The image at an untrusted `url`, under the full policy, without credentials.

        Raises UrlBlocked (422), FetchFailed (502: unreachable, non-200, too many redirects),
        FetchTimeout (504), PayloadTooLarge (413), UnsupportedMediaType (415: not served as an
        image, or not starting like one), InvalidImage (400: empty)."""
        r = await self.request("GET", url, headers={"Accept": IMAGE_ACCEPT})
        if r.status != 200:
            raise FetchFailed(f"GET {short(r.url)} answered {r.status}")
        return check_image(r.body, r.content_type, short(r.url))

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        trusted_origin: str | None = None,
    ) -> Fetched:
        """One request under the policy, redirects followed (GET only) and re-checked."""
        p = self.policy
        try:
            async with asyncio.timeout(p.total_timeout_s):
                return await self._follow(method, url, headers or {}, json, trusted_origin)
        except TimeoutError as e:
            raise FetchTimeout(
                f"fetching {short(url)} took longer than {p.total_timeout_s:g} s"
            ) from e

    async def aclose(self) -> None:
        await self._plain.aclose()
        if self._tls is not self._plain:
            await self._tls.aclose()

    async def _follow(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        json: Any,
        trusted_origin: str | None,
    ) -> Fetched:
        p = self.policy
        trusted = parse_target(trusted_origin).origin if trusted_origin else None
        target = parse_target(url, p.max_url_chars)
        first = target.origin
        for hop in range(p.max_redirects + 1):
            is_trusted = target.origin == trusted
            check_target(target, p, is_trusted)
            addresses = await self._addresses(target, is_trusted)
            sent = headers
            if target.origin != first:
                sent = {k: v for k, v in headers.items() if k.lower() not in _ORIGIN_BOUND}
            response = await self._send(method, target, addresses, sent, json)
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECTS and location and method == "GET":
                    if hop == p.max_redirects:
                        break
                    nxt = parse_target(urljoin(str(target.url), location), p.max_url_chars)
                    if target.scheme == "https" and nxt.scheme == "http":
                        raise UrlBlocked(f"{short(str(target.url))} redirects from https to http")
                    target = nxt
                    continue
                return await self._read(response, target)
            finally:
                await response.aclose()
        raise FetchFailed(f"{short(url)} redirects more than {p.max_redirects} times")

    async def _addresses(self, target: Target, trusted: bool) -> list[IPAddress]:
        """The addresses to connect to, every one of them allowed; UrlBlocked otherwise."""
        if target.ip is not None:
            found: list[IPAddress] = [target.ip]
        else:
            try:
                raw = await asyncio.to_thread(self.resolver, target.host, target.port)
                found = [ipaddress.ip_address(a) for a in raw]
            except (OSError, ValueError) as e:
                raise FetchFailed(f"cannot resolve {target.host}") from e
            if not found:
                raise FetchFailed(f"cannot resolve {target.host}")
        for ip in found:
            if trusted:
                cls = address_class(ip)
                reason = cls if cls == "cloud metadata" else None
            else:
                reason = blocked_reason(ip, self.policy.allowed_networks)
            if reason is not None:
                # The class only: the resolved address itself stays out of public messages.
                verb = "is" if target.ip is not None else "resolves to"
                article = "an" if reason[0] in "aeiou" else "a"
                raise UrlBlocked(f"refused: {target.host} {verb} {article} {reason} address")
        return found

    async def _send(
        self,
        method: str,
        target: Target,
        addresses: list[IPAddress],
        headers: dict[str, str],
        json: Any,
    ) -> httpx.Response:
        """Send to the first address that accepts a connection (each one already validated)."""
        p = self.policy
        timeout = {
            "connect": p.connect_timeout_s,
            "read": p.read_timeout_s,
            "write": p.read_timeout_s,
            "pool": p.connect_timeout_s,
        }
        extensions: dict[str, Any] = {"timeout": timeout}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        transport = self._tls if target.scheme == "https" else self._plain
        last: Exception | None = None
        for ip in addresses:
            request = httpx.Request(
                method,
                target.url.copy_with(host=str(ip).split("%")[0]),
                headers={"Host": target.host_header, "User-Agent": USER_AGENT, **headers},
                json=json,
                extensions=extensions,
            )
            try:
                return await transport.handle_async_request(request)
            except httpx.ConnectError as e:
                last = e
            except httpx.TimeoutException as e:
                raise FetchTimeout(f"{target.host} did not answer in time") from e
            except httpx.HTTPError as e:
                raise FetchFailed(f"{method} {target.host} failed: {type(e).__name__}") from e
        raise FetchFailed(f"cannot connect to {target.host}") from last

    async def _read(self, response: httpx.Response, target: Target) -> Fetched:
        url = short(str(target.url))
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not 200 <= response.status_code < 300:
            return Fetched(url, response.status_code, ctype, b"")
        cap = self.policy.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise PayloadTooLarge(f"{url} is {declared} bytes; the limit is {cap}")
        chunks, size = [], 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise PayloadTooLarge(f"{url} is larger than {cap} bytes")
                chunks.append(chunk)
        except httpx.TimeoutException as e:
            raise FetchTimeout(f"{target.host} stopped sending (read timeout)") from e
        except httpx.HTTPError as e:
            raise FetchFailed(f"reading {url} failed: {type(e).__name__}") from e
        return Fetched(url, response.status_code, ctype, b"".join(chunks))
