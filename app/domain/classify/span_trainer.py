"""Background retraining of span projects' entity recognisers, in a separate process.

The same scheduling as `trainer.Trainer` (one run per project at a time, a request during a run
trains once more after it; failures reported by `state()`), but a run trains in a child process
(`python -m app.inference.span_model`: spaCy on CPU, one thread) that is killed when it passes
`timeout_s`, so a stuck or runaway training costs nothing once its deadline is past. At most
`max_processes` (1) children run at once over all projects; a run waits for a slot before its
deadline starts. A run:

1. reads the project's annotated texts (never changes them);
2. skips training when their hash matches the newest model's (nothing to learn);
3. sends them to the child as JSON on stdin; the child writes the model (spaCy's own
   serialisation, see `span_model.py`) as JSON on stdout;
4. stores it as the project's next version `<n>-<hash>`, unless the project was reset meanwhile.

A timeout, a non-zero exit or unreadable output stores nothing: the previous model serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from app.domain.classify.store import ModelRow, ProjectStore
from app.domain.classify.trainer import Trainer, TrainState
from app.inference.span_model import FORMAT

log = logging.getLogger(__name__)

DEFAULT_COMMAND = (sys.executable, "-m", "app.inference.span_model")
EPOCHS = 20
ROOT = str(Path(__file__).resolve().parents[3])  # the folder holding `app`, for the child


async def _no_embed(texts: list[str]) -> list[object]:  # spans are not embedded
    raise AssertionError("a span trainer embeds nothing")


class SpanTrainer(Trainer):
    def __init__(
        self,
        store: ProjectStore,
        timeout_s: float,
        command: Sequence[str] = DEFAULT_COMMAND,
        epochs: int = EPOCHS,
        max_processes: int = 1,
    ) -> None:
        super().__init__(store, _no_embed, FORMAT, timeout_s)  # type: ignore[arg-type]
        self.command = tuple(command)  # tests swap it to inject failures and hangs
        self.epochs = epochs
        # Training processes at once, over all projects (each is a CPU-bound spaCy run of
        # ~200-400 MB); a run waits for a slot before its deadline starts.
        self._slots = asyncio.Semaphore(max_processes)

    async def _train_once(self, project: str, st: TrainState) -> ModelRow | None:
        proj = await asyncio.to_thread(self.store.get_project, project)
        if proj is None or proj.kind != "spans":
            return None
        rows = await asyncio.to_thread(self.store.examples, project)
        spans = [(r.key, r.text, list(r.spans or ())) for r in rows]
        used = sorted({lab for _, _, sp in spans for _, _, lab in sp})
        if not used:
            st.note = "waiting for an example with a span"
            return None
        labels = list(proj.labels) if proj.labels else used
        digest = self._digest(labels, spans)
        latest = await asyncio.to_thread(self.store.latest_model, project)
        if latest is not None and latest.tag.endswith(f"-{digest}"):
            st.note = "examples unchanged since the newest model"
            return latest
        job = {
            "labels": labels,
            "examples": [[text, sp] for _, text, sp in spans],
            "epochs": self.epochs,
            "seed": 0,
            "budget_s": self.timeout_s * 0.6,  # stop adding epochs well before the kill
        }
        t0 = time.perf_counter()
        async with self._slots:
            out = await self._run(json.dumps(job).encode())
        try:
            result = json.loads(out)
            model, fit = result["model"], result["metrics"]
        except (ValueError, KeyError, TypeError) as e:
            raise RuntimeError(f"the training process wrote no model ({e})") from e
        counts: dict[str, int] = {}
        for _, _, sp in spans:
            for _, _, lab in sp:
                counts[lab] = counts.get(lab, 0) + 1
        metrics = {
            "examples": len(rows),
            "examples_per_label": dict(sorted(counts.items())),
            "train_s": round(time.perf_counter() - t0, 3),
            **fit,
        }
        row = await asyncio.to_thread(
            self.store.save_model,
            project,
            proj.created,
            digest,
            proj.revision,
            json.dumps(model),
            json.dumps(metrics),
            time.time(),
        )
        if row is None:
            st.note = "the project was deleted while it trained; nothing stored"
            return None
        st.note = None
        log.info("project %s: span model %s (%d texts)", project, row.tag, len(rows))
        return row

    async def _run(self, job: bytes) -> bytes:
        """The child's stdout; TimeoutError after killing it at the deadline, RuntimeError on
        a non-zero exit. Cancellation kills it too."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        proc = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(job), self.timeout_s)
        except BaseException:  # the deadline, or the run was cancelled: no orphan trains on
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise RuntimeError(f"the training process exited with {proc.returncode}: {tail}")
        return out

    def _digest(
        self, labels: list[str], spans: list[tuple[str, str, list[tuple[int, int, str]]]]
    ) -> str:
        h = hashlib.sha256(json.dumps([FORMAT, self.epochs, labels]).encode())
        for key, text, sp in spans:
            h.update(json.dumps([key, text, sp]).encode())
        return h.hexdigest()[:8]
