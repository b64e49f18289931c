"""`prelabel annotate --server URL`: the same items and records as the in-process pipeline, but
computed by a running Prelabel service over HTTP, on its bulk lane.

Each item is one or a few requests: detect -> `POST /v1/detect`; segment -> `POST /v1/detect`,
then `POST /v1/sam/embed` once and `POST /v1/sam/segment` per box on the embedding (the image is
uploaded twice at most, never per box); ner -> `POST /v1/ner`; tokens -> `POST /v1/tokens`;
keypoints -> `POST /v1/keypoints`; ocr -> `POST /v1/ocr`. Records are built with the same
`serial.py` / `serial_kinds.py` functions as in-process, and `run.json`'s identity (model
versions, class order, keypoint names and skeleton) is read from `GET /v1/models`, so a run can
move between in-process and remote and resume.

Retries: 429 and 503 (overload, not ready, shutting down) wait for `Retry-After` (or a growing
pause) and try again for up to `patience_s`; 502/504 and connection errors are retried up to
`retries` times. Any other 4xx is the item's own fault: it fails with the server's code and
message. Concurrency is the caller's bound (`run_items`), so the server sees at most that many
items in flight from this client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.batch.inputs import Item
from app.batch.pipeline import TEXT_TASKS, JobSpec, identity, read_file
from app.batch.serial import image_json, object_json, text_json
from app.batch.serial_kinds import keypoints_json, ocr_json, tokens_json
from app.errors import BadInput, NotReady, PrelabelError

RETRY_STATUSES = frozenset({429, 503})
TRANSIENT_STATUSES = frozenset({500, 502, 504})


class RemoteError(PrelabelError):
    """The service refused an item: its own error code and message, passed on."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class RemoteOptions:
    url: str
    api_key: str | None = None
    timeout_s: float = 120.0
    patience_s: float = 300.0  # how long to keep retrying 429/503 for one request
    retries: int = 3  # for 5xx and connection errors
    max_pause_s: float = 5.0


class RemoteAnnotator:
    """Turns items into checkpoint records through a Prelabel service at `opts.url`."""

    def __init__(self, client: httpx.AsyncClient, spec: JobSpec, opts: RemoteOptions) -> None:
        self.client = client
        self.spec = spec
        self.opts = opts

    @staticmethod
    def client_for(opts: RemoteOptions, concurrency: int) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        return httpx.AsyncClient(
            base_url=opts.url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(opts.timeout_s, connect=10.0),
            limits=limits,
        )

    async def meta(self) -> dict[str, Any]:
        """run.json for this spec from `GET /v1/models`; NotReady until the models are."""
        models = {m["name"]: m for m in (await self._call("GET", "/v1/models"))["models"]}
        spec = self.spec
        names = [spec.model] + ([spec.sam_model] if spec.task == "segment" else [])
        for name in names:
            if name not in models:
                raise BadInput(f"the server at {self.opts.url} has no model {name!r}")
            if models[name]["status"] != "ready":
                raise NotReady(f"model {name!r} on {self.opts.url} is {models[name]['status']}")
        versions = {name: str(models[name]["version"]) for name in names}
        m = models[spec.model]
        if spec.task == "keypoints":
            extra = {"keypoint_names": m["keypoints"], "skeleton": m["skeleton"]}
            return identity(spec, versions, list(m["labels"]), extra)
        if spec.task in ("ocr", "tokens"):
            return identity(spec, versions, [])
        return identity(spec, versions, list(m["labels"]))

    async def process(self, item: Item) -> Any:
        """One item -> its record (see `serial.py`). Raises PrelabelError for a bad item."""
        spec = self.spec
        if item.kind == "text":
            assert item.text is not None
            if spec.task not in TEXT_TASKS:
                raise BadInput(f"a text item needs --task ner or tokens, not {spec.task}")
            body = {"texts": [item.text], "model": spec.model, "priority": "bulk"}
            if spec.task == "tokens":
                res = await self._call("POST", "/v1/tokens", json=body)
                return tokens_json(item.name, item.text, res["results"][0]["tokens"])
            res = await self._call("POST", "/v1/ner", json=body)
            spans = [
                (s["start"], s["end"], s["label"], s["score"]) for s in res["results"][0]["spans"]
            ]
            return text_json(item.name, item.text, spans)
        if spec.task in TEXT_TASKS:
            raise BadInput("an image item needs --task detect, segment, keypoints or ocr")
        if item.url is not None and item.url.startswith("/"):
            raise BadInput("Label Studio /data/ references are fetched in-process only")
        data: bytes | None = None
        if item.url is None:
            data = await read_file(item)
        source = _ImageSource(data, item.url)
        fields = {
            "model": spec.model,
            "score_threshold": spec.score_threshold,
            "priority": "bulk",
        }
        if spec.task in ("keypoints", "ocr"):
            opts = {"model": spec.model, "min_score": spec.score_threshold, "priority": "bulk"}
            a = await self._call("POST", f"/v1/{spec.task}", **source.form(opts))
            if spec.task == "ocr":
                return ocr_json(item.name, a["width"], a["height"], a["lines"])
            return keypoints_json(item.name, a["width"], a["height"], a["instances"])
        det = await self._call("POST", "/v1/detect", **source.form(fields))
        detections = det["detections"]
        if spec.task == "detect" or not detections:
            objects = [object_json(d["label"], tuple(d["box"]), d["score"]) for d in detections]
            return image_json(item.name, det["width"], det["height"], objects)
        embed = {"model": spec.sam_model, "priority": "bulk"}
        emb = await self._call("POST", "/v1/sam/embed", **source.form(embed))
        masks = await asyncio.gather(
            *(self._mask(emb["embedding_id"], d, source) for d in detections)
        )
        objects = [
            object_json(d["label"], tuple(d["box"]), d["score"], rle)
            for d, rle in zip(detections, masks, strict=True)
        ]
        return image_json(item.name, det["width"], det["height"], objects)

    async def _mask(self, embedding_id: str, det: Mapping[str, Any], source: _ImageSource) -> Any:
        body = {
            "model": self.spec.sam_model,
            "embedding_id": embedding_id,
            "box": det["box"],
            "priority": "bulk",
        }
        try:
            res = await self._call("POST", "/v1/sam/segment", json=body)
        except RemoteError as e:
            if e.status != 404:
                raise
            # The embedding was evicted from the server's cache: send the image instead.
            fields = {k: v for k, v in body.items() if k != "embedding_id"}
            res = await self._call("POST", "/v1/sam/segment", **source.form(fields))
        return res["masks"][0]["rle"]

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        file: bytes | None = None,
    ) -> Any:
        """The JSON answer of one request, retried as the module docstring says."""
        waited, pause, failures = 0.0, 0.1, 0
        files = {"file": ("image", file, "application/octet-stream")} if file is not None else None
        while True:
            try:
                r = await self.client.request(method, path, json=json, data=data, files=files)
            except httpx.HTTPError as e:
                failures += 1
                if failures > self.opts.retries:
                    raise RemoteError(
                        "server_unreachable", f"{method} {path} failed: {type(e).__name__}", 502
                    ) from e
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.opts.max_pause_s)
                continue
            if r.status_code < 400:
                return r.json()
            if r.status_code in RETRY_STATUSES and waited < self.opts.patience_s:
                delay = _retry_after(r, pause, self.opts.max_pause_s)
                await asyncio.sleep(delay)
                waited += delay
                pause = min(pause * 2, self.opts.max_pause_s)
                continue
            if r.status_code in TRANSIENT_STATUSES and failures < self.opts.retries:
                failures += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.opts.max_pause_s)
                continue
            code, message = _error_of(r)
            raise RemoteError(code, message, r.status_code)


@dataclass(frozen=True)
class _ImageSource:
    """An image sent as the file's bytes, or as an `image_url` the server fetches itself."""

    data: bytes | None
    url: str | None

    def form(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """`_call` keyword arguments for options `fields` plus the image: a multipart upload
        (lists as JSON strings, as the API's form fields take them), or a JSON body."""
        if self.data is None:
            return {"json": {**fields, "image_url": self.url}}
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return {"data": form, "file": self.data}


def _retry_after(r: httpx.Response, pause: float, cap: float) -> float:
    raw = r.headers.get("retry-after", "")
    try:
        return min(max(float(raw), 0.0), cap)
    except ValueError:
        return pause


def _error_of(r: httpx.Response) -> tuple[str, str]:
    """The server's {"error": {"code", "message"}}, or the status line for anything else."""
    try:
        err = r.json()["error"]
        return str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        return f"http_{r.status_code}", f"{r.request.method} {r.request.url.path}: {r.status_code}"
