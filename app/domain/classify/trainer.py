"""Background retraining of project classifiers.

`request(project)` starts a training run as an asyncio task unless one is running, in which case
it marks the project dirty and the running task trains once more when it ends (so a burst of
example uploads costs at most two runs). A run:

1. reads the examples (worker thread), embeds those without a cached vector on the bulk lane of
   the embedder's batcher, and caches the vectors in the store; embeds the label anchors (the
   declared label set, else the labels the examples use; see `linear.py`);
2. fits the classifier and its cross-validation on a worker thread, waited for at most
   `timeout_s` (a run past it is a failure; its thread ends on its own, as `fit` is bounded by
   `MAX_ITER` iterations, and its result is thrown away);
3. stores the model as the project's next version, unless the examples and settings hash to the
   newest model's hash (nothing to learn).

Any failure leaves the newest stored model serving and is reported by `state()`; the examples
are never touched by a run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.domain.classify.linear import (
    LinearModel,
    Matrix,
    NotTrainable,
    anchored,
    choose_c,
    cross_validate,
    fit,
)
from app.domain.classify.store import ModelRow, ProjectStore
from app.domain.classify.zeroshot import readable
from app.errors import PrelabelError
from app.inference.embedder import Vector

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], Awaitable[list[Vector]]]
FitFn = Callable[..., tuple[LinearModel, dict[str, Any]]]


def fit_and_score(
    x: Matrix,
    targets: Sequence[Sequence[str]],
    multi_label: bool,
    anchors: Matrix | None = None,
    anchor_labels: Sequence[str] = (),
) -> tuple[LinearModel, dict[str, Any]]:
    """Blocking: the model on every example plus the label anchors, and k-fold scores (over the
    examples; the anchors train every fold) when there are enough."""
    t0 = time.perf_counter()
    xa, ta = anchored(x, targets, anchors, anchor_labels)
    model = fit(xa, ta, multi_label)
    fit_s = time.perf_counter() - t0
    extra = None if anchors is None else (anchors, [(a,) for a in anchor_labels])
    cv = cross_validate(x, targets, multi_label, choose_c(len(ta)), extra)
    return model, {
        "fit_s": round(fit_s, 3),
        "cv_s": round(time.perf_counter() - t0 - fit_s, 3),
        "cv_accuracy": cv.accuracy if cv else None,
        "cv_macro_f1": cv.macro_f1 if cv else None,
        "cv_folds": cv.folds if cv else None,
    }


@dataclass
class TrainState:
    running: bool = False
    dirty: bool = False
    last_error: str | None = None  # the latest run's failure (None after a success)
    note: str | None = None  # why the latest run stored nothing although it did not fail
    last_run_s: float | None = None


class Trainer:
    def __init__(
        self,
        store: ProjectStore,
        embed: Embed,
        vector_model: str,
        timeout_s: float,
        fit_fn: FitFn = fit_and_score,
    ) -> None:
        self.store = store
        self.embed = embed
        self.vector_model = vector_model  # embedder name + version: cached vectors match it
        self.timeout_s = timeout_s
        self.fit_fn = fit_fn
        self._states: dict[str, TrainState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def state(self, project: str) -> TrainState:
        return self._states.setdefault(project, TrainState())

    def request(self, project: str) -> None:
        """Train soon (now, or once more after the run in progress)."""
        st = self.state(project)
        st.dirty = True
        task = self._tasks.get(project)
        if task is None or task.done():
            self._tasks[project] = asyncio.create_task(self._loop(project))

    async def wait(self, project: str) -> None:
        """Until no run is in progress or pending for `project`."""
        while (task := self._tasks.get(project)) is not None and not task.done():
            await asyncio.shield(task)

    def forget(self, project: str) -> None:
        """The project was deleted: cancel its run, drop its state."""
        task = self._tasks.pop(project, None)
        if task is not None:
            task.cancel()
        self._states.pop(project, None)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, project: str) -> None:
        st = self.state(project)
        st.running = True
        try:
            while st.dirty:
                st.dirty = False
                t0 = time.perf_counter()
                try:
                    await self._train_once(project, st)
                    st.last_error = None
                except asyncio.CancelledError:
                    raise
                except TimeoutError:
                    st.last_error = f"training took longer than {self.timeout_s:g} s"
                except PrelabelError as e:  # the embedder is not loaded, say
                    st.last_error = f"training failed: {e.message}"
                    log.warning("project %s: training failed: %s", project, e.message)
                except Exception as e:  # the previous model keeps serving
                    st.last_error = f"training failed: {type(e).__name__}: {e}"[:500]
                    log.exception("project %s: training failed", project)
                st.last_run_s = round(time.perf_counter() - t0, 3)
        finally:
            st.running = False

    async def _train_once(self, project: str, st: TrainState) -> ModelRow | None:
        proj = await asyncio.to_thread(self.store.get_project, project)
        if proj is None:
            return None
        rows = await asyncio.to_thread(self.store.examples, project)
        targets = [r.labels for r in rows]
        distinct = {label for t in targets for label in t}
        if len(distinct) < (1 if proj.multi_label else 2):
            st.note = f"waiting for examples of {'one' if proj.multi_label else 'two'} labels"
            return None
        stale = [r for r in rows if r.vector is None or r.vector_model != self.vector_model]
        fresh = await self.embed([r.text for r in stale]) if stale else []
        if stale:
            pairs = [(r.key, v.tobytes()) for r, v in zip(stale, fresh, strict=True)]
            await asyncio.to_thread(self.store.set_vectors, project, self.vector_model, pairs)
        new = {r.key: v for r, v in zip(stale, fresh, strict=True)}
        x = np.stack([new[r.key] if r.key in new else _vector(r.vector) for r in rows])
        # Label anchors: the declared label set, else every label the examples use.
        anchor_labels = list(proj.labels) if proj.labels else sorted(distinct)
        anchors = np.stack(await self.embed([readable(a) for a in anchor_labels]))
        digest = self._hash(
            proj.multi_label, anchor_labels, [(r.key, r.text, r.labels) for r in rows]
        )
        latest = await asyncio.to_thread(self.store.latest_model, project)
        if latest is not None and latest.tag.endswith(f"-{digest}"):
            st.note = "examples unchanged since the newest model"
            return latest
        t0 = time.perf_counter()
        try:
            model, scores = await asyncio.wait_for(
                asyncio.to_thread(
                    self.fit_fn, x, targets, proj.multi_label, anchors, anchor_labels
                ),
                self.timeout_s,
            )
        except NotTrainable as e:
            st.note = str(e)
            return None
        counts: dict[str, int] = {}
        for t in targets:
            for label in t:
                counts[label] = counts.get(label, 0) + 1
        metrics = {
            "examples": len(rows),
            "examples_per_label": dict(sorted(counts.items())),
            "train_s": round(time.perf_counter() - t0, 3),
            "embedded": len(stale),
            "vector_model": self.vector_model,
            **scores,
        }
        row = await asyncio.to_thread(
            self.store.save_model,
            project,
            proj.created,
            digest,
            proj.revision,
            json.dumps(model.to_json()),
            json.dumps(metrics),
            time.time(),
        )
        if row is None:
            st.note = "the project was deleted while it trained; nothing stored"
            return None
        st.note = None
        log.info("project %s: model %s (%d examples)", project, row.tag, len(rows))
        return row

    def _hash(
        self, multi_label: bool, anchors: list[str], items: list[tuple[str, str, tuple[str, ...]]]
    ) -> str:
        h = hashlib.sha256(json.dumps([self.vector_model, multi_label, anchors]).encode())
        for key, text, labels in items:
            h.update(json.dumps([key, text, list(labels)]).encode())
        return h.hexdigest()[:8]


def _vector(raw: bytes | None) -> Vector:
    assert raw is not None
    return np.frombuffer(raw, np.float32)
