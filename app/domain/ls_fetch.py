"""Fetching a Label Studio task's image: `/data/...` references resolved against the project's
Label Studio host, with its token, and nowhere else.

- Relative references (`/data/local-files/?d=images/x.jpg`, `/data/upload/3/ab12-x.jpg`) are
  joined to the host `/setup` gave (or PRELABEL_LABEL_STUDIO_URL).
- The token goes only to that host (same scheme, host and port). Two kinds are accepted: a
  legacy token (`Authorization: Token <t>`), and a personal access token, which is a JWT refresh
  token exchanged at `POST /api/token/refresh` for a short-lived access token
  (`Authorization: Bearer <access>`), refreshed when it expires or is refused.
- Absolute http(s) URLs on other hosts are fetched only when allowed, without credentials.
- Bodies are capped at `max_bytes` while streaming.

The hardened URL policy (DNS pinning, private-address refusal, redirects) is a later issue; this
module is the one place it will go.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from app.errors import BadInput, PayloadTooLarge, PrelabelError


class FetchFailed(PrelabelError):
    code = "fetch_failed"
    status = 502


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
    """One per process; `client` is injectable for tests."""

    def __init__(
        self, client: httpx.AsyncClient, max_bytes: int, allow_external: bool = False
    ) -> None:
        self.client = client
        self.max_bytes = max_bytes
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
        url, credentials = self.resolve(ref, host)
        headers = {}
        if credentials and token and host:
            headers["Authorization"] = await self._authorization(host, token)
        response = await self._get(url, headers)
        if response is None and credentials and token and host and is_jwt(token):
            self._access.pop((host, token), None)  # refused: the access token may be stale
            headers["Authorization"] = await self._authorization(host, token)
            response = await self._get(url, headers)
        if response is None:
            raise FetchFailed(f"Label Studio refused {url}: check the token given to Prelabel")
        return response

    async def _get(self, url: str, headers: dict[str, str]) -> bytes | None:
        """The body, or None on 401/403."""
        try:
            async with self.client.stream("GET", url, headers=headers) as r:
                if r.status_code in (401, 403):
                    return None
                if r.status_code != 200:
                    raise FetchFailed(f"GET {url} answered {r.status_code}")
                chunks, size = [], 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(f"{url} is larger than {self.max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as e:
            raise FetchFailed(f"GET {url} failed: {type(e).__name__}") from e

    async def _authorization(self, host: str, token: str) -> str:
        if not is_jwt(token):
            return f"Token {token}"
        cached = self._access.get((host, token))
        if cached is None or cached.expires - 30 < time.time():
            url = urljoin(host.rstrip("/") + "/", "api/token/refresh")
            try:
                r = await self.client.post(url, json={"refresh": token})
            except httpx.HTTPError as e:
                raise FetchFailed(f"token refresh at {url} failed: {type(e).__name__}") from e
            try:
                access = str(r.json()["access"]) if r.status_code == 200 else ""
            except (ValueError, KeyError, TypeError):
                access = ""
            if not access:
                raise FetchFailed(f"Label Studio refused the personal access token ({url})")
            cached = _Access(access, jwt_expiry(access) or time.time() + 240)
            self._access[(host, token)] = cached
        return f"Bearer {cached.token}"
