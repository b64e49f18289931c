"""Fetching a Label Studio task's data the way Label Studio 1.23.2 stores it, with the project's
credentials sent only to the project's Label Studio.

What a task's `data` holds, per storage (read in Label Studio's source, see docs/label-studio.md):
- uploads: `/data/upload/<project>/<uuid>-<name>` (data_import/models.py, MEDIA_URL `/data/`);
- Local Files: `/data/local-files/?d=<path>`, or `<HOST>/data/local-files/?d=<path>` when Label
  Studio's HOST is set (io_storages/localfiles/models.py);
- S3, GCS, Azure: `s3://bucket/key`, `gs://bucket/key`, `azure-blob://container/key`, sent to
  `/predict` unresolved. Label Studio resolves them at `GET /tasks/<task id>/resolve/?fileuri=
  <urlsafe base64 of the URI>` (io_storages/urls.py, proxy_api.py): with the storage's
  "presign" on, a 303 to a presigned URL on the storage's own origin; off, the bytes proxied.
- anything else: an absolute http(s) URL.

Rules:
- A relative reference is appended to the project's host (`host + ref`, as Label Studio's SDK
  does), and the result must have the host's origin: `//evil/x`, backslashes and control
  characters are refused before, so `/http://evil/x.jpg` is a path on Label Studio, never a URL.
- The token goes only to the host's origin (same scheme, host and port). Two kinds: a legacy
  token (`Authorization: Token <t>`), and a personal access token, a JWT refresh token exchanged
  at `POST <host>/api/token/refresh` for a short-lived access token (`Bearer`).
- The host is the SafeFetcher's `trusted_origin` (may be private) only when the operator named
  it (`LsAccess.trusted`); otherwise every request, the token refresh included, is held to the
  full URL policy. A redirect to another origin (a presigned URL) is fetched under the full
  policy without `Authorization`.
- Absolute URLs on other hosts only with `allow_external`, without credentials.
- Bodies are capped while streaming and must be images (magic bytes); the `Accept` header is
  `*/*` because Label Studio's views answer 406 to `image/*`.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import re
import time
from dataclasses import dataclass

from app.domain.labelstudio.projects import LsAccess, origin_of
from app.domain.urls import SafeFetcher, check_image
from app.domain.urls.fetcher import Fetched
from app.errors import BadInput, FetchFailed, UrlBlocked, ValidationFailed

# Cloud storages whose URIs Label Studio resolves (io_storages/*/models.py `url_scheme`).
STORAGE_SCHEMES = ("s3", "gs", "azure-blob")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")
_QUERY = re.compile(r"\?[^\s'\"]*")


def redact(text: str) -> str:
    """`text` with every URL query string cut (presigned URLs carry their signature there)."""
    return _QUERY.sub("?...", text)


def shown(url: str) -> str:
    """A URL for messages: no query, at most 120 characters."""
    cut = url.split("?", 1)[0] + ("?..." if "?" in url else "")
    return cut if len(cut) <= 120 else cut[:120] + "..."


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
    except (ValueError, IndexError, json.JSONDecodeError, AttributeError):
        return 0.0


def storage_scheme(ref: str) -> str | None:
    """ "s3", "gs" or "azure-blob" when `ref` is a cloud storage URI, else None."""
    scheme = ref.split("://", 1)[0].lower() if "://" in ref else ""
    return scheme if scheme in STORAGE_SCHEMES else None


def on_origin(host: str, path: str) -> str:
    """`host + path`, refused (BadInput) unless `path` is an absolute path whose join stays on
    `host`'s origin."""
    if not path.startswith("/") or path.startswith("//") or _UNSAFE.search(path):
        raise BadInput(f"task data {shown(path)!r} is not a Label Studio path")
    url = host.rstrip("/") + path
    try:
        same = origin_of(url) == origin_of(host)
    except ValidationFailed:
        same = False
    if not same:
        raise BadInput(f"task data {shown(path)!r} leaves the Label Studio origin")
    return url


class TaskDataFetcher:
    """One per process, on the process's SafeFetcher."""

    def __init__(
        self, fetcher: SafeFetcher, allow_external: bool = False, max_tokens: int = 1024
    ) -> None:
        self.fetcher = fetcher
        self.allow_external = allow_external
        self.max_tokens = max_tokens
        self._access: collections.OrderedDict[tuple[str, str], _Access] = collections.OrderedDict()

    def resolve(self, ref: str, access: LsAccess, task_id: object = None) -> tuple[str, bool]:
        """(absolute URL, whether the project's token may go with it). BadInput otherwise."""
        host = access.host
        if storage_scheme(ref) or ref.startswith("/"):
            if not host:
                raise BadInput(
                    f"task data {shown(ref)!r} needs a Label Studio URL: connect through "
                    "/setup or set PRELABEL_LABEL_STUDIO_URL"
                )
            if ref.startswith("/"):
                return on_origin(host, ref), True
            if not isinstance(task_id, int) or isinstance(task_id, bool):
                raise BadInput(f"task data {shown(ref)!r} is a storage URI: the task needs an id")
            fileuri = base64.urlsafe_b64encode(ref.encode("utf-8", "surrogatepass")).decode()
            return on_origin(host, f"/tasks/{task_id}/resolve/?fileuri={fileuri}"), True
        if ref.split("://", 1)[0].lower() not in ("http", "https") or "://" not in ref:
            raise BadInput(
                f"task data {shown(ref)!r} is not an http(s) URL, /data/ path or storage URI"
            )
        if host and _same_origin(ref, host):
            return ref, True
        if not self.allow_external:
            raise BadInput(
                f"task data URL on another host is not allowed: {shown(ref)!r} "
                "(PRELABEL_LS_ALLOW_EXTERNAL_URLS)"
            )
        return ref, False

    async def fetch_task(self, ref: str, access: LsAccess, task_id: object = None) -> bytes:
        """The image bytes `ref` (a task's data value; `task_id` its task's id) names.
        Raises BadInput, UrlBlocked, FetchFailed (refused token, error status), FetchTimeout,
        PayloadTooLarge, UnsupportedMediaType."""
        url, credentials = self.resolve(ref, access, task_id)
        host, token = access.host, access.token
        trusted = host if credentials and access.trusted else None
        headers = {"Accept": "*/*"}  # see the module docstring: never what decides
        try:
            if credentials and token and host:
                headers["Authorization"] = await self._authorization(access)
            r = await self._get(url, headers, trusted)
            if r.status in (401, 403) and credentials and token and host and is_jwt(token):
                self._access.pop((host, token), None)  # refused: the access token may be stale
                headers["Authorization"] = await self._authorization(access)
                r = await self._get(url, headers, trusted)
        except UrlBlocked as e:
            if not access.trusted and credentials:
                raise UrlBlocked(
                    f"{e.message} (the Label Studio host from /setup is not the operator's: "
                    "set PRELABEL_LABEL_STUDIO_URL or PRELABEL_LS_ALLOWED_ORIGINS to allow it)"
                ) from e
            raise
        if r.status in (401, 403):
            raise FetchFailed(f"Label Studio refused {shown(url)}: check the token given to it")
        if r.status != 200:
            raise FetchFailed(f"GET {shown(r.url)} answered {r.status}")
        return check_image(r.body, r.content_type, shown(r.url))

    async def fetch_json(self, path: str, access: LsAccess) -> object:
        """GET an API `path` ("/api/projects/3/export?exportType=JSON") on the project's Label
        Studio with its token, parsed on a worker thread. Only on the operator's host
        (`access.trusted`): a host named by any /setup caller gets no API calls. Raises
        BadInput (no host, token or trust), FetchFailed (refused, error status, not JSON),
        FetchTimeout, PayloadTooLarge (the fetcher's body cap)."""
        host, token = access.host, access.token
        if not host or not token or not access.trusted:
            raise BadInput(
                "reading Label Studio's API needs the operator's Label Studio URL and a token "
                "(PRELABEL_LABEL_STUDIO_URL or PRELABEL_LS_ALLOWED_ORIGINS, and a token)"
            )
        url = on_origin(host, path)
        headers = {"Accept": "application/json", "Authorization": await self._authorization(access)}
        r = await self._get(url, headers, host)
        if r.status in (401, 403) and is_jwt(token):
            self._access.pop((host, token), None)
            headers["Authorization"] = await self._authorization(access)
            r = await self._get(url, headers, host)
        if r.status in (401, 403):
            raise FetchFailed(f"Label Studio refused {shown(url)}: check the token given to it")
        if r.status != 200:
            raise FetchFailed(f"GET {shown(r.url)} answered {r.status}")
        try:
            return await asyncio.to_thread(json.loads, r.body)
        except ValueError as e:
            raise FetchFailed(f"GET {shown(url)} did not answer JSON") from e

    async def fetch(self, ref: str, host: str | None, token: str | None) -> bytes:
        """`fetch_task` with the operator's own settings (PRELABEL_LABEL_STUDIO_URL and
        PRELABEL_LABEL_STUDIO_TOKEN), which are trusted: the batch pipeline's path."""
        return await self.fetch_task(ref, LsAccess(host, token, trusted=True))

    async def _get(self, url: str, headers: dict[str, str], trusted: str | None) -> Fetched:
        return await self.fetcher.request("GET", url, headers=headers, trusted_origin=trusted)

    async def _authorization(self, access: LsAccess) -> str:
        host, token = access.host, access.token
        assert host and token
        if not is_jwt(token):
            return f"Token {token}"
        cached = self._access.get((host, token))
        if cached is None or cached.expires - 30 < time.time():
            url = on_origin(host, "/api/token/refresh")
            r = await self.fetcher.request(
                "POST",
                url,
                json={"refresh": token},
                trusted_origin=host if access.trusted else None,
            )
            try:
                access_token = str(json.loads(r.body)["access"]) if r.status == 200 else ""
            except (ValueError, KeyError, TypeError):
                access_token = ""
            if not access_token:
                raise FetchFailed(f"Label Studio refused the personal access token ({url})")
            cached = _Access(access_token, jwt_expiry(access_token) or time.time() + 240)
            self._access[(host, token)] = cached
            while len(self._access) > self.max_tokens:
                self._access.popitem(last=False)
        return f"Bearer {cached.token}"


def _same_origin(url: str, host: str) -> bool:
    if _UNSAFE.search(url):
        return False
    try:
        return origin_of(url) == origin_of(host)
    except ValidationFailed:
        return False
