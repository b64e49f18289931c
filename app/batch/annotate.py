"""`prelabel annotate`: enumerate -> shard -> skip finished keys -> run -> export -> summary.

Exit codes: 0 every item of this shard has a result; 2 some items failed (listed in
errors.jsonl with the reason; a rerun retries them); 1 a setup error (bad INPUT, unknown
model, models that fail to load, a checkpoint from another task or model).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.batch.checkpoint import Checkpoint, read_errors, read_results
from app.batch.export import canonical, export
from app.batch.inputs import InputError, Item, enumerate_items
from app.batch.meta import mismatch, read_meta, write_meta
from app.batch.pipeline import JobSpec, Processor, in_process, run_identity, run_items
from app.batch.progress import Progress
from app.batch.remote import RemoteAnnotator, RemoteOptions
from app.batch.shard import in_shard
from app.config import Settings
from app.errors import PrelabelError
from app.runtime import Runtime


@dataclass(frozen=True)
class AnnotateArgs:
    source: Path
    out: Path
    fmt: str
    spec: JobSpec
    shard_index: int = 0
    shard_count: int = 1
    server: RemoteOptions | None = None  # run against this Prelabel service instead


def annotate(settings: Settings, a: AnnotateArgs) -> int:
    spec = a.spec
    try:
        a = replace(a, fmt=canonical(a.fmt, spec.task))  # the catalogue's name, alias resolved
    except ValueError as e:
        return _fail(str(e))
    try:
        items = enumerate_items(a.source)
        mine = [i for i in items if in_shard(i.key, a.shard_index, a.shard_count)]
    except (InputError, ValueError) as e:
        return _fail(str(e))
    done = read_results(a.out)
    todo = [i for i in mine if i.key not in done]
    print(
        f"{len(mine)} of {len(items)} items in shard {a.shard_index}/{a.shard_count}: "
        f"{len(mine) - len(todo)} already done, {len(todo)} to do",
        flush=True,
    )
    meta = read_meta(a.out)
    if meta is not None and (diff := _other_run(meta, spec)):
        # Checked here too: with nothing left to do, no model is loaded to compare versions.
        return _fail(f"{a.out} holds results of another run ({diff})")
    t0 = time.perf_counter()
    if todo or meta is None:
        try:
            code, meta, progress = asyncio.run(_run(settings, a, todo, meta))
        except (ValidationError, ValueError) as e:
            return _fail(str(e))
        if code:
            return code
    else:
        progress = Progress(0)
    assert meta is not None
    mine_keys = {i.key for i in mine}
    results = {k: r for k, r in read_results(a.out).items() if k in mine_keys}
    failed = {k: e for k, e in read_errors(a.out).items() if k in mine_keys}
    files = export(a.out, a.fmt, spec.task, meta, results)
    if meta.get("format") != a.fmt:  # recorded for `prelabel merge` (its default --format)
        write_meta(a.out, {**meta, "format": a.fmt})
    wall = time.perf_counter() - t0
    print(f"wrote {len(files)} file(s) under {a.out}: {len(results)} items exported")
    print(
        f"summary: {len(mine)} items, {progress.done} processed this run, "
        f"{len(mine) - len(todo)} skipped, {len(failed)} failed, "
        f"{progress.rate:.2f} items/s, wall {wall:.1f} s",
        flush=True,
    )
    return 2 if failed else 0


async def _run(
    settings: Settings, a: AnnotateArgs, todo: list[Item], meta: dict[str, Any] | None
) -> tuple[int, dict[str, Any], Progress]:
    progress = Progress(len(todo))
    async with _backend(settings, a) as (current, process_item):
        if isinstance(current, str):
            return _fail(current), {}, progress
        if meta is not None and (diff := mismatch(meta, current)):
            return _fail(f"{a.out} holds results of another run ({diff})"), {}, progress
        write_meta(a.out, current)
        ckpt = Checkpoint(a.out)
        progress.start()
        try:
            await run_items(process_item, todo, a.spec.concurrency, ckpt, progress)
        finally:
            await progress.stop()
            ckpt.close()
        return 0, current, progress


@contextlib.asynccontextmanager
async def _backend(
    settings: Settings, a: AnnotateArgs
) -> AsyncIterator[tuple[dict[str, Any] | str, Processor]]:
    """(run.json identity or a setup error message, the item function): a runtime of this
    process loading just the models the task needs, or a remote service (`a.server`)."""
    spec = a.spec
    if a.server is not None:
        async with RemoteAnnotator.client_for(a.server, spec.concurrency) as client:
            remote = RemoteAnnotator(client, spec, a.server)
            try:
                current: dict[str, Any] | str = await remote.meta()
            except PrelabelError as e:
                current = f"{a.server.url}: {e.message}"
            yield current, remote.process
        return
    models = [spec.model] + ([spec.sam_model] if spec.task == "segment" else [])
    task = spec.task
    rt = Runtime(
        settings.model_copy(
            update={
                "models": models,
                "default_detector": spec.model if task in ("detect", "segment") else "",
                "default_sam": spec.sam_model if task == "segment" else "",
                "default_ner": spec.model if task in ("ner", "tokens") else "",
                "default_keypoints": spec.model if task == "keypoints" else "",
                "default_ocr": spec.model if task == "ocr" else "",
            }
        )
    )
    await rt.start()
    try:
        if not rt.ready:
            errors = {n: s.error for n, s in rt.registry.states.items() if s.status != "ready"}
            current = f"models failed to load: {errors}"
        else:
            try:
                current = run_identity(rt, spec)
            except PrelabelError as e:  # e.g. --task tokens on a model without a tagger
                current = e.message
        yield current, in_process(rt, spec)
    finally:
        await rt.stop()


def _other_run(meta: dict[str, Any], spec: JobSpec) -> str | None:
    """The first of task and model (SAM too for segment) in which `meta` differs from `spec`."""
    mine = {"task": spec.task, "model": spec.model}
    if spec.task == "segment":
        mine["sam_model"] = spec.sam_model
    for field, value in mine.items():
        if meta.get(field) != value:
            return f"{field}: {meta.get(field)!r} != {value!r}"
    return None


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
