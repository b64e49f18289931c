"""The URL policy, and parsing a URL into the target it names, refusing what the policy forbids
before any DNS lookup or connection.

Refused outright: schemes other than http(s) (http only with `allow_http`), user:password@ in the
URL, IPv4 hosts not spelled as a canonical dotted quad (`http://2130706433/`, `http://0x7f.1/`,
`http://0177.0.0.1/`, `http://127.1/`: resolvers read these as 127.0.0.1), and, when an
allow-list is set, hosts not on it. Addresses are judged later, after resolution
(`addresses.py`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from app.domain.urls.addresses import IPAddress, IPNetwork
from app.errors import UrlBlocked

if TYPE_CHECKING:
    from app.config import Settings

_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class UrlPolicy:
    """What untrusted URLs may reach, and how much is read from them.

    `allowed_hosts`: exact host names or `*.suffix` patterns (lower case, ASCII/punycode); empty
    means any host whose addresses are public. `allowed_networks`: networks reachable despite
    being private (an in-cluster object store); cloud metadata addresses stay refused.
    Timeouts are seconds: `connect_timeout_s` and `read_timeout_s` per socket operation,
    `total_timeout_s` for the whole fetch, every redirect and the body included.
    """

    allow_http: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_networks: tuple[IPNetwork, ...] = ()
    max_bytes: int = 20 * 1024 * 1024
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 30.0
    max_redirects: int = 3
    max_url_chars: int = 2048

    @classmethod
    def from_settings(cls, s: Settings) -> UrlPolicy:
        return cls(
            allow_http=s.url_allow_http,
            allowed_hosts=tuple(s.url_allowed_hosts),
            allowed_networks=tuple(ipaddress.ip_network(n) for n in s.url_allowed_networks),
            max_bytes=s.max_upload_bytes,
            connect_timeout_s=s.url_connect_timeout_s,
            read_timeout_s=s.url_read_timeout_s,
            total_timeout_s=s.url_timeout_s,
        )


@dataclass(frozen=True)
class Target:
    """A parsed http(s) URL. `host` is lower case, IDNA-encoded, without a trailing dot or IPv6
    brackets; `ip` is set when the host is an IP literal; `port` is explicit or the default."""

    url: httpx.URL
    scheme: str
    host: str
    port: int
    ip: IPAddress | None

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def host_header(self) -> str:
        default = DEFAULT_PORTS[self.scheme] == self.port
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if default else f"{host}:{self.port}"


def short(url: str, limit: int = 160) -> str:
    """A URL cut for messages."""
    return url if len(url) <= limit else url[:limit] + "..."


def parse_target(url: str, max_chars: int = 2048) -> Target:
    """Parse `url`, refusing (UrlBlocked) anything that is not a plain http(s) URL."""
    if len(url) > max_chars:
        raise UrlBlocked(f"URL is longer than {max_chars} characters")
    try:
        parts = urlsplit(url.strip())  # validates a bracketed IPv6 host itself
    except ValueError as e:
        raise UrlBlocked(f"not a valid URL: {short(url)!r}") from e
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = f"{scheme!r}" if scheme else "(none)"
        raise UrlBlocked(f"URL scheme {shown} is not allowed; use an https:// URL")
    if "@" in parts.netloc:
        raise UrlBlocked("URLs with credentials (user:password@host) are not accepted")
    raw_host = (parts.hostname or "").rstrip(".")
    if not raw_host:
        raise UrlBlocked(f"URL has no host: {short(url)!r}")
    ip = _ip_literal(raw_host)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
        parsed = httpx.URL(url.strip())
    except (ValueError, httpx.InvalidURL) as e:
        raise UrlBlocked(f"not a valid URL: {short(url)!r}") from e
    host = str(ip) if ip is not None else parsed.host.rstrip(".").lower()
    return Target(parsed, scheme, host, port, ip)


def _ip_literal(host: str) -> IPAddress | None:
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.replace("%25", "%"))
        except ValueError as e:
            raise UrlBlocked(f"host [{short(host, 60)}] is not a valid IPv6 address") from e
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        # A numeric last label is an IPv4 address to URL parsers and resolvers alike; only the
        # canonical form is accepted, so what is checked is what is reached.
        try:
            return ipaddress.IPv4Address(host)
        except ValueError:
            raise UrlBlocked(
                f"host {short(host, 60)!r} is not a dotted-quad IPv4 address "
                "(decimal, octal and hex forms are refused)"
            ) from None
    return None


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """`host` matches an exact entry or a `*.suffix` entry (subdomains, not the suffix itself)."""
    for p in patterns:
        if p.startswith("*."):
            if host.endswith(p[1:]) and len(host) > len(p) - 1:
                return True
        elif host == p:
            return True
    return False


def check_target(target: Target, policy: UrlPolicy, trusted: bool = False) -> None:
    """The checks that need no DNS: scheme and host allow-list. A `trusted` target (the
    configured Label Studio origin) skips both; its addresses are still pinned."""
    if trusted:
        return
    if target.scheme == "http" and not policy.allow_http:
        raise UrlBlocked(
            "plain http URLs are not allowed; use https (or set PRELABEL_URL_ALLOW_HTTP=true)"
        )
    if policy.allowed_hosts and not host_allowed(target.host, policy.allowed_hosts):
        raise UrlBlocked(f"host {target.host!r} is not in PRELABEL_URL_ALLOWED_HOSTS")
