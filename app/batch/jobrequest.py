"""A job submission, checked: what a client asks for (`JobRequest`), its `source` expanded into
items, its format resolved through the catalogue, and the `JobSpec` plus the document stored
with the job (`spec_json`: the spec and the export's identity, fixed at submission like an
annotate run's run.json). Cheap checks only: no item is looked at here (`jobitems.py` checks
and stores them a chunk at a time).

Image paths must resolve (symlinks and `..` included) under one of the configured input roots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from app.batch.export import canonical, formats_for
from app.batch.inputs import InputError, enumerate_items
from app.batch.jobpaths import PathChecker
from app.batch.pipeline import TEXT_TASKS, JobSpec, Task, default_score, run_identity
from app.errors import PayloadTooLarge, ValidationFailed
from app.runtime import Runtime


@dataclass(frozen=True)
class JobRequest:
    """What a client asks for: image paths (detect, segment, keypoints, ocr) or texts (ner,
    tokens). `score_threshold` None: the task's default (`pipeline.default_score`)."""

    task: Task
    paths: Sequence[str] | None = None
    texts: Sequence[str] | None = None
    model: str | None = None
    format: str | None = None
    score_threshold: float | None = None
    owner: str | None = None  # the submitting key's name; None when authentication is off
    source: str | None = None  # a folder or manifest under an input root, instead of items
    caller: str | None = None  # who counts against the per-caller cap (key name or address)


def job_format(fmt: str, task: str) -> str:
    """The catalogue's name for `fmt` (or its older alias) for `task`; 422 otherwise."""
    try:
        return canonical(fmt, task)
    except ValueError:
        raise ValidationFailed(
            f"format {fmt!r} is not one of {formats_for(task)} for {task}"
        ) from None


def check_path(roots: Sequence[Path], raw: str) -> Path:
    """`raw` resolved (symlinks, `..`), if it lies under one of `roots`; else 422."""
    return Path(PathChecker(list(roots)).check(raw))


def expand(req: JobRequest, roots: Sequence[Path]) -> JobRequest:
    """A `source` (folder or manifest under an input root, as `prelabel annotate` reads them)
    -> the same request with its items listed; the item paths are checked again when stored,
    so a manifest cannot point outside the roots. Blocking: run it on a worker thread."""
    if req.paths is not None or req.texts is not None:
        raise ValidationFailed("give one of 'items', 'texts' or 'source'")
    assert req.source is not None
    try:
        items = enumerate_items(check_path(roots, req.source))
    except InputError as e:
        raise ValidationFailed(f"source {req.source!r}: {e}") from e
    kinds = {i.kind for i in items}
    if len(kinds) > 1:
        raise ValidationFailed(f"source {req.source!r} mixes images and texts")
    if kinds == {"text"}:
        return replace(req, source=None, texts=[i.text or "" for i in items])
    paths = [i.url if i.url is not None else str(i.path) for i in items]
    return replace(req, source=None, paths=paths)


def job_spec(rt: Runtime, req: JobRequest, concurrency: int) -> tuple[JobSpec, dict[str, Any]]:
    """The job's settings, checked against `rt`'s settings and loaded models, and the document
    stored as its `spec_json`."""
    s = rt.settings
    if (req.paths is None) == (req.texts is None):
        raise ValidationFailed("give exactly one of 'items' (image paths), 'texts' or 'source'")
    n = len(req.paths if req.paths is not None else req.texts or ())
    if n > s.max_job_items:
        raise PayloadTooLarge(f"a job holds at most {s.max_job_items} items, not {n}")
    if n == 0:
        raise ValidationFailed("no texts" if req.texts is not None else "no items")
    if req.task in TEXT_TASKS:
        if req.texts is None:
            raise ValidationFailed(f"task {req.task} takes 'texts'")
    elif req.paths is None:
        raise ValidationFailed(f"task {req.task} takes 'items' (image paths)")
    defaults = {
        "ner": s.default_ner,
        "tokens": s.default_ner,
        "keypoints": s.default_keypoints,
        "ocr": s.default_ocr,
    }
    model = req.model or defaults.get(req.task, s.default_detector)
    if req.task in ("detect", "segment"):
        rt.registry.detector(model)
        if req.task == "segment":
            if not s.default_sam:
                raise ValidationFailed("task segment needs a SAM model (PRELABEL_DEFAULT_SAM)")
            rt.registry.sam(s.default_sam)
    spec = JobSpec(
        task=req.task,
        model=model,
        sam_model=s.default_sam if req.task == "segment" else "",
        score_threshold=default_score(req.task)
        if req.score_threshold is None
        else req.score_threshold,
        concurrency=concurrency,
    )
    # The export's identity (class order, versions), fixed at submission like run.json; it
    # also checks the model is loaded and of the task's type (404 unknown_model otherwise).
    doc = {"spec": asdict(spec), "meta": run_identity(rt, spec)}
    return spec, doc
