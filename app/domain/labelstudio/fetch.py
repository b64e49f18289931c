"""Fetching a Label Studio task's image: `/data/...` references resolved against the project's
Label Studio host, with its token, and nowhere else.

- Relative references (`/data/local-files/?d=images/x.jpg`, `/data/upload/3/ab12-x.jpg`) are
  joined to the host `/setup` gave (or PRELABEL_LABEL_STUDIO_URL).
- The token goes only to that host (same scheme, host and port). Two kinds are accepted: a
  legacy token (`Authorization: Token <t>`), and a personal access token, which is a JWT refresh
  token exchanged at `POST /api/token/refresh` for a short-lived access token
  (`Authorization: Bearer <access>`), refreshed when it expires or is refused.
- Absolute http(s) URLs on other hosts are fetched only when allowed, without credentials.
- Every request goes through the SafeFetcher (app/domain/urls): the Label Studio origin is its
  `trusted_origin`, so it may be private (in-cluster) but is still pinned to the address it
  resolved to and redirect-checked; a redirect to another origin is fetched under the full URL
  policy and without the `Authorization` header. Bodies are capped while streaming and must be
  images (content type and magic bytes).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from app.domain.urls import SafeFetcher, check_image
from app.domain.urls.fetcher import Fetched
from app.errors import BadInput, FetchFailed


@dataclass
class _Access:
    token: str
    expires: float


def is_jwt(token: str) -> bool:
    parts = token.split(".")
    return len(parts) == 3 and all(parts)


def jwt_expiry(token: str) -> float:
    """The `exp` claim of a JWT (not verified: only used to refresh early), or 0."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims.get("exp", 0))
    except (ValueError, IndexError, json.JSONDecodeError):
        return 0.0


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class TaskDataFetcher:
    """One per process, on the process's SafeFetcher."""

    def __init__(self, fetcher: SafeFetcher, allow_external: bool = False) -> None:
        self.fetcher = fetcher
        self.allow_external = allow_external
        self._access: dict[tuple[str, str], _Access] = {}

    def resolve(self, ref: str, host: str | None) -> tuple[str, bool]:
        """(absolute URL, whether Label Studio's token may go with it)."""
        if ref.startswith("/"):
            if not host:
                raise BadInput(
                    f"task data {ref!r} is relative but no Label Studio URL is known: "
                    "connect through /setup or set PRELABEL_LABEL_STUDIO_URL"
                )
            return urljoin(host.rstrip("/") + "/", ref.lstrip("/")), True
        scheme = urlsplit(ref).scheme
        if scheme not in ("http", "https"):
            raise BadInput(f"task data {ref[:80]!r} is not an http(s) URL or /data/ path")
        if host and _origin(ref) == _origin(host):
            return ref, True
        if not self.allow_external:
            raise BadInput(f"task data URL on another host is not allowed: {ref[:120]!r}")
        return ref, False

    async def fetch(self, ref: str, host: str | None, token: str | None) -> bytes:
        """The image bytes `ref` names. Raises BadInput, UrlBlocked, FetchFailed (refused token,
        error status), FetchTimeout, PayloadTooLarge, UnsupportedMediaType."""
        url, credentials = self.resolve(ref, host)
        trusted = host if credentials else None
        # `*/*`: Label Studio's views negotiate the response type and answer 406 to `image/*`;
        # what the body is gets decided by check_image (magic bytes), not by this header.
        headers = {"Accept": "*/*"}
        if credentials and token and host:
            headers["Authorization"] = await self._authorization(host, token)
        r = await self._get(url, headers, trusted)
        if r.status in (401, 403) and credentials and token and host and is_jwt(token):
            self._access.pop((host, token), None)  # refused: the access token may be stale
            headers["Authorization"] = await self._authorization(host, token)
            r = await self._get(url, headers, trusted)
        if r.status in (401, 403):
            raise FetchFailed(f"Label Studio refused {url}: check the token given to Prelabel")
        if r.status != 200:
            raise FetchFailed(f"GET {r.url} answered {r.status}")
        return check_image(r.body, r.content_type, r.url)

    async def _get(self, url: str, headers: dict[str, str], trusted: str | None) -> Fetched:
        return await self.fetcher.request("GET", url, headers=headers, trusted_origin=trusted)

    async def _authorization(self, host: str, token: str) -> str:
        if not is_jwt(token):
            return f"Token {token}"
        cached = self._access.get((host, token))
        if cached is None or cached.expires - 30 < time.time():
            url = urljoin(host.rstrip("/") + "/", "api/token/refresh")
            r = await self.fetcher.request(
                "POST", url, json={"refresh": token}, trusted_origin=host
            )
            try:
                access = str(json.loads(r.body)["access"]) if r.status == 200 else ""
            except (ValueError, KeyError, TypeError):
                access = ""
            if not access:
                raise FetchFailed(f"Label Studio refused the personal access token ({url})")
            cached = _Access(access, jwt_expiry(access) or time.time() + 240)
            self._access[(host, token)] = cached
        return f"Bearer {cached.token}"
