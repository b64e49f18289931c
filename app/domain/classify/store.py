"""Where projects, their labeled examples and their trained models live: the `ProjectStore`
interface, and its embedded SQLite implementation (`sqlite_store.py`).

A backend must give these guarantees (a PostgreSQL one would give them with the same SQL):
- `add_examples` is all-or-nothing and bumps the project's `revision` once;
- `save_model` gives each project's models increasing version numbers, even when two replicas
  train at once (a transaction reads the latest version and inserts the next);
- `latest_model_tag` is cheap: every /v1/classify call asks it, so a replica serves a model
  another replica trained as soon as it is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ProjectRow:
    name: str
    owner: str | None  # the API key's name that created it (None: authentication was off)
    labels: tuple[str, ...] | None  # a fixed label set, or None: any label is accepted
    multi_label: bool
    created: float  # Unix seconds
    updated: float
    revision: int  # bumped by every change to the examples
    kind: str = "classify"  # "classify" (texts -> labels) or "spans" (texts -> entity spans)
    options: str | None = None  # JSON: kind-specific settings (spans: `SpanOptions`)


@dataclass(frozen=True)
class ExampleIn:
    key: str  # the client's id for it, or a hash of the text: a new label for a key replaces
    text: str
    labels: tuple[str, ...]
    # Span projects: [start, end) code-point offsets and label of each span (`labels` then
    # holds each span's label, so label counts are span counts); None for classification.
    spans: tuple[tuple[int, int, str], ...] | None = None


@dataclass(frozen=True)
class ExampleRow:
    key: str
    text: str
    labels: tuple[str, ...]
    vector: bytes | None  # float32 [D] embedding of `text`, computed by `vector_model`
    vector_model: str | None
    spans: tuple[tuple[int, int, str], ...] | None = None


@dataclass(frozen=True)
class ModelRow:
    version: int  # 1, 2, ... per project
    tag: str  # "<version>-<hash of the examples and settings>": what predictions report
    created: float
    revision: int  # the project revision it was trained on
    payload: str  # JSON: `LinearModel.to_json()`, or (spans) `span_model.SpanModel.to_json()`
    metrics: str  # JSON: counts, cross-validation, timings


class ProjectStore(Protocol):
    def get_project(self, name: str) -> ProjectRow | None: ...

    def create_project(
        self,
        name: str,
        owner: str | None,
        labels: tuple[str, ...] | None,
        multi_label: bool,
        now: float,
        kind: str = "classify",
        options: str | None = None,
    ) -> ProjectRow:
        """Create it, or return the existing row unchanged (first creator wins)."""
        ...

    def add_examples(self, name: str, examples: Sequence[ExampleIn], now: float) -> int:
        """Insert or replace (by key) in one transaction; returns the new revision."""
        ...

    def delete_examples(self, name: str, keys: Sequence[str], now: float) -> int:
        """Remove these keys; returns how many existed."""
        ...

    def count_examples(self, name: str) -> int: ...

    def label_counts(self, name: str) -> dict[str, int]: ...

    def examples(self, name: str) -> list[ExampleRow]: ...

    def set_vectors(self, name: str, model: str, vectors: Sequence[tuple[str, bytes]]) -> None:
        """Cache embeddings by example key (rows replaced since are left alone)."""
        ...

    def save_model(
        self,
        name: str,
        created: float,
        hash8: str,
        revision: int,
        payload: str,
        metrics: str,
        now: float,
    ) -> ModelRow | None:
        """Store the next version (and keep only the newest few). None, storing nothing, when
        the project is gone or is another one of that name (its `created` differs): a model
        trained before a reset never serves after it."""
        ...

    def latest_model(self, name: str) -> ModelRow | None: ...

    def latest_model_tag(self, name: str) -> str | None: ...

    def delete_project(self, name: str) -> bool:
        """The project, its examples and models; False when there was none."""
        ...

    def close(self) -> None:
        """Release connections; a later call reconnects."""
        ...
