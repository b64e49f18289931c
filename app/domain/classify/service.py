"""Use case: classify texts, zero-shot against given labels or with a project's classifier.

Texts are embedded on the embedder's batcher (one scheduler item per text, so concurrent
requests batch together). With a project, the newest stored model serves; every call asks the
store for its tag (one indexed read), so a model trained by another replica on a shared store is
served as soon as it is committed. A project with no model yet answers zero-shot over its labels.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from app.domain import uncertainty
from app.domain.apikeys import Principal
from app.domain.classify import zeroshot
from app.domain.classify.limits import Limits, check_texts, clean_labels
from app.domain.classify.linear import LinearModel, Matrix
from app.domain.classify.projects import ProjectConflict, Projects
from app.domain.classify.zeroshot import LabelSpec
from app.errors import UnknownModel, ValidationFailed
from app.inference.batcher import Lane
from app.inference.embedder import Vector
from app.inference.registry import LoadedEmbedder, ModelRegistry

BULK_CHUNK = 32  # texts in flight at once when embedding many (the batcher's queue is bounded)
INTERACTIVE_CHUNK = 128  # a request's texts and label phrases, under PRELABEL_MAX_QUEUE's 256
MAX_PHRASES = 2000  # label names, descriptions and examples in one zero-shot request
PHRASE_CACHE = 4096  # label phrases whose embeddings are kept


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float  # few-shot: the classifier's probability; zero-shot: see zeroshot.py
    similarity: float | None  # zero-shot only: cosine to the label's prototype


@dataclass(frozen=True)
class TextResult:
    labels: tuple[str, ...]  # the decision: the top label, or (multi-label) all over threshold
    scores: tuple[LabelScore, ...]  # best first, at most top_k
    uncertainty: float | None = None  # app/domain/uncertainty.py, over every label's score


@dataclass(frozen=True)
class ClassifyResult:
    mode: Literal["zero-shot", "few-shot"]
    model_version: str  # few-shot: the project model's tag "<version>-<hash>"
    embedder: str  # "<name>@<version>"
    results: list[TextResult]
    timings: dict[str, float]
    # [N, D] the texts' embeddings (what /v1/rank diversifies on)
    vectors: Matrix | None = field(default=None, compare=False)


class TextClassifier:
    def __init__(
        self,
        registry: ModelRegistry,
        embedder: str,
        projects: Projects,
        limits: Limits,
        timeout_s: float,
    ) -> None:
        self.registry = registry
        self.embedder_name = embedder
        self.projects = projects
        self.limits = limits
        self.timeout_s = timeout_s
        self._phrases: OrderedDict[str, Vector] = OrderedDict()
        self._models: dict[str, tuple[str, LinearModel]] = {}  # project -> (tag, model)

    def _embedder(self) -> LoadedEmbedder:
        if self.embedder_name not in self.registry.states:
            raise UnknownModel(
                f"text classification needs the embedding model {self.embedder_name!r}, which "
                "this server does not load: add it to PRELABEL_MODELS"
            )
        return self.registry.embedder(self.embedder_name)

    def vector_model(self) -> str:
        spec = self.registry.manifest.get(self.embedder_name)
        return f"{spec.name}@{spec.version}"

    async def embed(self, texts: Sequence[str], lane: Lane = Lane.INTERACTIVE) -> list[Vector]:
        """[D] unit vectors, in order, submitted in chunks (the batcher's queue is bounded)."""
        b = self._embedder().batcher
        out: list[Vector] = []
        step = INTERACTIVE_CHUNK if lane == Lane.INTERACTIVE else BULK_CHUNK
        for i in range(0, len(texts), max(1, step)):
            chunk = texts[i : i + step]
            out.extend(await asyncio.gather(*(b.submit(t, lane, self.timeout_s) for t in chunk)))
        return out

    async def embed_bulk(self, texts: list[str]) -> list[Vector]:
        """What the trainer embeds examples with: the bulk lane, no request deadline."""
        return await self.embed(texts, Lane.BULK)

    async def classify(
        self,
        texts: Sequence[str],
        labels: Sequence[LabelSpec] | None = None,
        project: str | None = None,
        principal: Principal | None = None,
        multi_label: bool | None = None,
        threshold: float | None = None,
        top_k: int = 5,
        lane: Lane = Lane.INTERACTIVE,
        strategy: uncertainty.Strategy = uncertainty.DEFAULT_STRATEGY,
    ) -> ClassifyResult:
        """Exactly one of `labels` (zero-shot) and `project`. `threshold` decides multi-label
        sets: default 0.5 on few-shot probabilities, 0.3 on zero-shot similarities. Each
        result's `uncertainty` is `strategy` over all the labels' scores."""
        if (labels is None) == (project is None):
            raise ValidationFailed("give either labels (zero-shot) or project, not both")
        if not texts:
            raise ValidationFailed("texts is empty")
        if len(texts) > self.limits.max_texts:
            raise ValidationFailed(f"{len(texts)} texts; at most {self.limits.max_texts}")
        check_texts(texts, self.limits.max_chars)
        self._embedder()  # 404/503 now, before any other work, if the embedder is not loaded
        t0 = time.perf_counter()
        if project is not None:
            row = await self.projects.visible(project, principal)
            if row.kind != "classify":
                raise ProjectConflict(
                    f"project {project!r} is a {row.kind} project: "
                    f"POST /v1/projects/{project}/spans"
                )
            multi = row.multi_label if multi_label is None else multi_label
            model = await self._model(project)
            if model is not None:
                tag, linear = model
                x = np.stack(await self.embed(texts, lane))
                probs = linear.predict_proba(x)
                out = [
                    _decide(linear.labels, p, None, linear.multi_label, threshold or 0.5, top_k)
                    for p in probs
                ]
                return _with_uncertainty(self._result("few-shot", tag, out, t0), probs, x, strategy)
            names = row.labels or tuple(await self.projects.label_names(project))
            if not names:
                raise ValidationFailed(
                    f"project {project!r} has no labels yet: add examples, or declare its labels"
                )
            labels = [LabelSpec(n) for n in names]
        else:
            multi = bool(multi_label)
        assert labels is not None
        clean_labels([lab.name for lab in labels], "labels")
        if len(labels) < (1 if multi else 2):
            raise ValidationFailed("zero-shot single-label classification needs two labels")
        phrases = [p for lab in labels for p in lab.phrases()]
        if len(phrases) > MAX_PHRASES:
            raise ValidationFailed(
                f"{len(phrases)} label names, descriptions and examples; at most {MAX_PHRASES}"
            )
        check_texts(phrases, self.limits.max_chars, "label phrase {}")
        missing = list(dict.fromkeys(p for p in phrases if p not in self._phrases))
        vectors = await self.embed([*texts, *missing], lane)  # one round of batching
        x = np.stack(vectors[: len(texts)])
        known = {p: self._phrases[p] for p in phrases if p in self._phrases}
        known.update(zip(missing, vectors[len(texts) :], strict=True))
        self._remember(known)
        protos = [known[p] for p in phrases]
        sims = zeroshot.similarities(x, zeroshot.prototypes(labels, protos))
        scores = zeroshot.scores(sims)
        names = tuple(lab.name for lab in labels)
        out = [
            _decide(names, s, sim, multi, threshold if threshold is not None else 0.3, top_k)
            for s, sim in zip(scores, sims, strict=True)
        ]
        result = self._result("zero-shot", "zero-shot", out, t0)
        return _with_uncertainty(result, scores, x, strategy)

    def _remember(self, vectors: dict[str, Vector]) -> None:
        """Label phrase embeddings, most recently used kept (at most `PHRASE_CACHE`)."""
        for phrase, v in vectors.items():
            self._phrases[phrase] = v
            self._phrases.move_to_end(phrase)
        while len(self._phrases) > PHRASE_CACHE:
            self._phrases.popitem(last=False)

    async def _model(self, project: str) -> tuple[str, LinearModel] | None:
        """The newest stored model, parsed once per tag."""
        store = self.projects.store
        tag = await asyncio.to_thread(store.latest_model_tag, project)
        cached = self._models.get(project)
        if tag is None:
            self._models.pop(project, None)
            return None
        if cached is not None and cached[0] == tag:
            return cached
        row = await asyncio.to_thread(store.latest_model, project)
        if row is None:
            return None
        model = (row.tag, LinearModel.from_json(json.loads(row.payload)))
        self._models[project] = model
        return model

    def _result(
        self, mode: Literal["zero-shot", "few-shot"], version: str, out: list[TextResult], t0: float
    ) -> ClassifyResult:
        spec = self.registry.manifest.get(self.embedder_name)
        ms = round((time.perf_counter() - t0) * 1000, 2)
        return ClassifyResult(mode, version, f"{spec.name}@{spec.version}", out, {"total_ms": ms})


def _with_uncertainty(
    r: ClassifyResult, probs: Matrix, x: Matrix, strategy: uncertainty.Strategy
) -> ClassifyResult:
    """`r` with each text's uncertainty from its [K] scores (`probs` [N, K]) and `vectors` x."""
    us = uncertainty.of_probs(probs, strategy)
    results = [
        replace(t, uncertainty=round(float(v), 4)) for t, v in zip(r.results, us, strict=True)
    ]
    return replace(r, results=results, vectors=x)


def _decide(
    names: tuple[str, ...],
    scores: Matrix,
    sims: Matrix | None,
    multi: bool,
    threshold: float,
    top_k: int,
) -> TextResult:
    order = np.argsort(-scores, kind="stable")
    ranked = tuple(
        LabelScore(
            names[k], round(float(scores[k]), 4), None if sims is None else round(float(sims[k]), 4)
        )
        for k in order[:top_k]
    )
    if not multi:
        chosen: tuple[str, ...] = (names[int(order[0])],)
    else:
        basis = scores if sims is None else sims
        chosen = tuple(names[k] for k in order if basis[k] >= threshold)
    return TextResult(chosen, ranked)
