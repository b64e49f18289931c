"""Use case: a project's labeled examples, training and model state, with ownership.

A project belongs to the API key that created it (its first example upload): other `user` keys
get 404 for it, as if it did not exist, and 409 when they try to create one of that name;
`admin` keys see and change every project. With authentication off there are no owners.

Names starting with `ls-` belong to Prelabel's Label Studio backend (app/domain/labelstudio/
choices.py), which creates them without an owner: only admin keys (or no authentication) may
see, change or create them, so a user key cannot read or reset another team's Label Studio model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.apikeys import Principal
from app.domain.classify.limits import (
    MAX_LABELS_PER_EXAMPLE,
    Limits,
    check_texts,
    clean_labels,
)
from app.domain.classify.store import ExampleIn, ProjectRow, ProjectStore
from app.domain.classify.trainer import Trainer
from app.errors import NotFound, PrelabelError, ValidationFailed

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SYSTEM_PREFIX = "ls-"  # projects kept by the Label Studio backend: admin keys only


class ProjectConflict(PrelabelError):
    code = "conflict"
    status = 409


@dataclass(frozen=True)
class Example:
    text: str
    labels: tuple[str, ...]
    key: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    project: str
    multi_label: bool
    labels: tuple[str, ...] | None  # the fixed label set, if declared
    examples: int
    examples_per_label: dict[str, int]
    revision: int  # of the examples; a model trained on an older one is `stale`
    version: str | None  # the newest model's tag, None before the first
    trained_at: float | None
    trained_on: int | None  # examples it was trained on
    cv: dict[str, Any]  # cv_accuracy, cv_macro_f1, cv_folds (null with too few examples)
    stale: bool
    training: bool
    last_error: str | None
    note: str | None
    kind: str = "classify"  # or "spans" (`spans.py`)


class Projects:
    def __init__(self, store: ProjectStore, limits: Limits, auto_train: bool = True) -> None:
        self.store = store
        self.limits = limits
        self.auto_train = auto_train
        self.trainer: Trainer | None = None  # set by the runtime (it needs the embedder)
        self.span_trainer: Trainer | None = None  # span projects' (`span_trainer.py`)

    def _trainer(self) -> Trainer:
        assert self.trainer is not None, "Projects.trainer is wired by the runtime"
        return self.trainer

    def trainer_for(self, name: str, kind: str) -> Trainer:
        """The trainer of a project of this kind ("classify" or "spans")."""
        if kind == "spans":
            assert self.span_trainer is not None, "Projects.span_trainer is wired by the runtime"
            return self.span_trainer
        return self._trainer()

    async def visible(self, name: str, who: Principal | None) -> ProjectRow:
        row = await asyncio.to_thread(self.store.get_project, check_name(name))
        if row is None or not _may_see(row, who):
            raise NotFound(f"no project {name!r}")
        return row

    async def label_names(self, name: str) -> list[str]:
        return list(await asyncio.to_thread(self.store.label_counts, name))

    async def add_examples(
        self,
        name: str,
        who: Principal | None,
        examples: Sequence[Example],
        labels: Sequence[str] | None = None,
        multi_label: bool | None = None,
    ) -> ModelInfo:
        """Validate everything, then store in one transaction (nothing is stored on a 4xx) and
        schedule a retrain."""
        check_name(name)
        if not examples:
            raise ValidationFailed("examples is empty")
        if len(examples) > self.limits.max_examples:
            raise ValidationFailed(
                f"{len(examples)} examples in one call; at most {self.limits.max_examples} "
                "(send them in several calls)"
            )
        fixed = None if labels is None else clean_labels(labels, "labels")
        check_reserved(name, who)
        row = await asyncio.to_thread(self.store.get_project, name)
        if row is not None and not _may_see(row, who):
            raise ProjectConflict(f"project name {name!r} is taken by another API key")
        if row is not None:
            if row.kind != "classify":
                raise ProjectConflict(
                    f"project {name!r} is a {row.kind} project: its examples carry spans"
                )
            if fixed is not None and row.labels != fixed:
                raise ProjectConflict(
                    f"project {name!r} was created with labels {list(row.labels or [])}; "
                    "delete it to change them"
                )
            if multi_label is not None and multi_label != row.multi_label:
                raise ProjectConflict(
                    f"project {name!r} is {'multi' if row.multi_label else 'single'}-label; "
                    "delete it to change that"
                )
        multi = row.multi_label if row is not None else bool(multi_label)
        allowed = row.labels if row is not None else fixed
        rows = _validated(examples, multi, allowed, self.limits.max_chars)
        have = await asyncio.to_thread(self.store.count_examples, name) if row else 0
        if have + len(rows) > self.limits.max_project_examples:
            raise ValidationFailed(
                f"project {name!r} holds {have} examples; {len(rows)} more would pass its cap "
                f"of {self.limits.max_project_examples}"
            )
        now = time.time()
        if row is None:
            owner = None if who is None else who.name
            made = await asyncio.to_thread(
                self.store.create_project, name, owner, fixed, multi, now
            )
            if not _may_see(made, who):  # another key created it meanwhile
                raise ProjectConflict(f"project name {name!r} is taken by another API key")
        await asyncio.to_thread(self.store.add_examples, name, rows, now)
        if self.auto_train:
            self._trainer().request(name)
        return await self.info(name, who)

    async def remove_examples(
        self, name: str, who: Principal | None, keys: Sequence[str]
    ) -> tuple[int, ModelInfo]:
        """Delete examples by key (a label withdrawn); retrain like an upload. Returns how many
        existed."""
        row = await self.visible(name, who)
        if not keys:
            raise ValidationFailed("keys is empty")
        if len(keys) > self.limits.max_examples:
            raise ValidationFailed(f"{len(keys)} keys; at most {self.limits.max_examples}")
        gone = await asyncio.to_thread(self.store.delete_examples, name, keys, time.time())
        if gone and self.auto_train:
            self.trainer_for(name, row.kind).request(name)
        return gone, await self.info(name, who)

    async def train(self, name: str, who: Principal | None, wait: bool) -> ModelInfo:
        row = await self.visible(name, who)
        trainer = self.trainer_for(name, row.kind)
        trainer.request(name)
        if wait:
            await trainer.wait(name)
        return await self.info(name, who)

    async def info(self, name: str, who: Principal | None) -> ModelInfo:
        row = await self.visible(name, who)
        counts = await asyncio.to_thread(self.store.label_counts, name)
        total = await asyncio.to_thread(self.store.count_examples, name)
        model = await asyncio.to_thread(self.store.latest_model, name)
        metrics: dict[str, Any] = json.loads(model.metrics) if model else {}
        st = self.trainer_for(name, row.kind).state(name)
        return ModelInfo(
            project=name,
            multi_label=row.multi_label,
            labels=row.labels,
            examples=total,
            examples_per_label=counts,
            revision=row.revision,
            version=model.tag if model else None,
            trained_at=model.created if model else None,
            trained_on=metrics.get("examples"),
            cv={k: metrics.get(k) for k in ("cv_accuracy", "cv_macro_f1", "cv_folds")},
            stale=model is None or model.revision < row.revision,
            training=st.running,
            last_error=st.last_error,
            note=st.note,
            kind=row.kind,
        )

    async def delete(self, name: str, who: Principal | None) -> None:
        row = await self.visible(name, who)
        self.trainer_for(name, row.kind).forget(name)
        await asyncio.to_thread(self.store.delete_project, name)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValidationFailed(
            "a project name is 1-128 characters: letters, digits, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


def check_reserved(name: str, who: Principal | None) -> None:
    """Refuse a user key a name of the Label Studio backend's (before anything is created)."""
    if not may_use_name(name, who):
        raise ProjectConflict(
            f"project names starting with {SYSTEM_PREFIX!r} are kept for Label Studio projects "
            "(admin keys only)"
        )


def may_use_name(name: str, who: Principal | None) -> bool:
    return who is None or who.is_admin or not name.startswith(SYSTEM_PREFIX)


def _may_see(row: ProjectRow, who: Principal | None) -> bool:
    if not may_use_name(row.name, who):
        return False
    return who is None or who.is_admin or row.owner is None or row.owner == who.name


def _validated(
    examples: Sequence[Example], multi: bool, allowed: tuple[str, ...] | None, max_chars: int
) -> list[ExampleIn]:
    check_texts([e.text for e in examples], max_chars, "examples[{}].text")
    out: list[ExampleIn] = []
    unknown: set[str] = set()
    for i, e in enumerate(examples):
        labels = clean_labels(e.labels, f"examples[{i}].labels")
        if not labels:
            raise ValidationFailed(f"examples[{i}] has no label")
        if not multi and len(labels) != 1:
            raise ValidationFailed(
                f"examples[{i}] has {len(labels)} labels; this project is single-label"
            )
        if len(labels) > MAX_LABELS_PER_EXAMPLE:
            raise ValidationFailed(f"examples[{i}] has more than {MAX_LABELS_PER_EXAMPLE} labels")
        if allowed is not None:
            unknown.update(lab for lab in labels if lab not in allowed)
        key = e.key or hashlib.sha256(e.text.encode()).hexdigest()[:24]
        if len(key) > 256:
            raise ValidationFailed(f"examples[{i}].key is longer than 256 characters")
        out.append(ExampleIn(key, e.text, labels))
    if unknown:
        raise ValidationFailed(
            f"labels not in the project's label set {list(allowed or [])}: {sorted(unknown)[:10]}"
        )
    return out
