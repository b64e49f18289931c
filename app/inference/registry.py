"""The model registry: loads each configured model (session, adapter, batcher), warms it up,
and records its state so readiness and `/v1/models` can tell the truth about it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from app.config import ProviderPolicy, ServingOverride
from app.errors import ModelMissing, NotReady, PrelabelError, UnknownModel
from app.inference.adaptive import AdaptiveSession
from app.inference.batcher import BatchConfig, Batcher
from app.inference.detectors import DETECTORS, Candidates, DetectItem, Detector
from app.inference.embedder import SentenceEmbedder, Vector
from app.inference.keypoints import KeypointItem, MoveNet
from app.inference.manifest import Manifest, ModelSpec
from app.inference.metrics import Metrics
from app.inference.ner import EntitySpan, SpacyNer, TokenClassifier, TokenWindow
from app.inference.ocr import F32, U8, LineRead, OcrDetector, OcrRecognizer
from app.inference.sam import DecodedMask, DecodeItem, Embedding, EncodeItem, SamDecoder, SamEncoder
from app.inference.session import (
    GPU_PROVIDERS,
    SessionOptions,
    active_provider,
    create_session,
)
from app.inference.tokens import SpacyTagger, TokenInfo

log = logging.getLogger(__name__)

Status = Literal["pending", "loading", "ready", "failed"]


@dataclass(frozen=True)
class Tuning:
    """Scheduler and thread settings the registry applies to every model it loads."""

    policy: ProviderPolicy
    cores: int
    batching: bool
    max_wait_ms: float | None
    max_queue: int
    retry_after_s: int
    gpu_mem_limit_mb: int | None = None
    overrides: dict[str, ServingOverride] = field(default_factory=dict)
    interactive_reserve_s: float = 0.0
    max_queue_wait_s: float | None = None


@dataclass
class LoadedDetector:
    spec: ModelSpec
    adapter: Detector
    batcher: Batcher[DetectItem, Candidates]


@dataclass
class LoadedSam:
    spec: ModelSpec
    encoder: SamEncoder
    decoder: SamDecoder
    encode: Batcher[EncodeItem, Embedding]
    decode: Batcher[DecodeItem, DecodedMask]


@dataclass
class LoadedNer:
    spec: ModelSpec
    labels: tuple[str, ...]
    spans: Batcher[str, list[EntitySpan]] | None = None  # spaCy: spans directly
    tokens: Batcher[str, list[TokenWindow]] | None = None  # token classifier: BIO windows
    # spaCy only: POS tags, lemmas and dependencies (/v1/tokens), from a second copy of the
    # pipeline without NER, on its own batcher "<name>/tokens".
    tagged: Batcher[str, list[TokenInfo]] | None = None


@dataclass
class LoadedEmbedder:
    spec: ModelSpec
    embedder: SentenceEmbedder
    batcher: Batcher[str, Vector]  # one text -> its [D] unit vector


@dataclass
class LoadedOcr:
    spec: ModelSpec
    detector: OcrDetector
    recognizer: OcrRecognizer
    detect: Batcher[F32, F32]  # one detector tensor -> its probability map
    read: Batcher[list[U8], list[LineRead]]  # one image's line crops -> their reads


@dataclass
class LoadedKeypoints:
    spec: ModelSpec
    adapter: MoveNet
    batcher: Batcher[KeypointItem, F32]  # one image -> its raw instance rows

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels


Loaded = LoadedDetector | LoadedSam | LoadedNer | LoadedEmbedder | LoadedOcr | LoadedKeypoints


@dataclass
class ModelState:
    spec: ModelSpec
    status: Status = "pending"
    error: str | None = None
    provider: str | None = None
    load_seconds: float | None = None
    loaded: Loaded | None = None
    batchers: list[Batcher[Any, Any]] = field(default_factory=list)


class ModelRegistry:
    """Loads the models named in `names` from `manifest`; all methods but `load_all` are cheap."""

    def __init__(
        self, manifest: Manifest, names: list[str], tuning: Tuning, metrics: Metrics
    ) -> None:
        self.manifest = manifest
        self.tuning = tuning
        self.metrics = metrics
        self.states: dict[str, ModelState] = {}
        for name in names:
            if name not in manifest.models:
                known = ", ".join(sorted(manifest.models))
                raise ValueError(f"PRELABEL_MODELS names {name!r}, not in the manifest ({known})")
            self.states[name] = ModelState(manifest.get(name))

    # -- lifecycle (blocking: call from a worker thread) ---------------------------------------

    def load_all(self) -> None:
        for state in self.states.values():
            self.load(state)

    def load(self, state: ModelState) -> None:
        spec = state.spec
        state.status = "loading"
        t0 = time.perf_counter()
        try:
            self.manifest.require(spec)
            loaded, batchers = self._build(spec, state)
            for b in batchers:
                b.start()
        except PrelabelError as e:
            state.status, state.error = "failed", e.message
            log.error("model %s not loaded: %s", spec.name, e.message)
            return
        except Exception as e:
            state.status, state.error = "failed", f"{type(e).__name__}: {e}"
            log.exception("model %s failed to load", spec.name)
            return
        state.loaded, state.batchers = loaded, batchers
        state.load_seconds = round(time.perf_counter() - t0, 3)
        state.status = "ready"
        self.metrics.model_ready.labels(spec.name).set(1)
        if state.provider:
            self.metrics.provider.labels(spec.name, state.provider).set(1)
        log.info("model %s ready on %s in %.2f s", spec.name, state.provider, state.load_seconds)

    def stop_all(self, drain: bool = True, timeout: float = 30.0) -> None:
        for state in self.states.values():
            for b in state.batchers:
                b.stop(drain=drain, timeout=timeout)
            if state.status == "ready":
                state.status = "pending"
                self.metrics.model_ready.labels(state.spec.name).set(0)

    # -- lookups ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return all(s.status == "ready" for s in self.states.values())

    def get(self, name: str, task: str) -> Loaded:
        state = self.states.get(name)
        if state is None or state.spec.task != task:
            names = [n for n, s in self.states.items() if s.spec.task == task]
            raise UnknownModel(f"unknown {task} model {name!r}; available: {names}")
        if state.status == "failed":
            raise ModelMissing(f"model {name!r} is not available: {state.error}")
        if state.loaded is None:
            raise NotReady(f"model {name!r} is still loading")
        return state.loaded

    def detector(self, name: str) -> LoadedDetector:
        m = self.get(name, "detect")
        assert isinstance(m, LoadedDetector)
        return m

    def sam(self, name: str) -> LoadedSam:
        m = self.get(name, "segment")
        assert isinstance(m, LoadedSam)
        return m

    def ner(self, name: str) -> LoadedNer:
        m = self.get(name, "ner")
        assert isinstance(m, LoadedNer)
        return m

    def ocr(self, name: str) -> LoadedOcr:
        m = self.get(name, "ocr")
        assert isinstance(m, LoadedOcr)
        return m

    def keypoints(self, name: str) -> LoadedKeypoints:
        m = self.get(name, "keypoints")
        assert isinstance(m, LoadedKeypoints)
        return m

    def embedder(self, name: str) -> LoadedEmbedder:
        m = self.get(name, "embed")
        assert isinstance(m, LoadedEmbedder)
        return m

    # -- construction ----------------------------------------------------------------------------

    def intra_op_threads(self, spec: ModelSpec) -> int:
        """ORT intra-op threads for a model's (wide) session: all the cores by default, so a
        call that runs alone uses every core; see `AdaptiveSession` for overlapping calls."""
        o = self.tuning.overrides.get(spec.name, ServingOverride())
        return o.intra_op_threads or spec.serving.intra_op_threads or self.tuning.cores

    def _config(self, spec: ModelSpec, workers: int, on_gpu: bool) -> BatchConfig:
        """Batch config for one batcher. On CPU a batch costs as much per item as single runs
        (and more past a few items), so batches stay small there (`cpu_max_batch_size`); on a
        GPU they are the whole game (`max_batch_size`)."""
        t = self.tuning
        o = t.overrides.get(spec.name, ServingOverride())
        default = spec.serving.max_batch_size if on_gpu else spec.serving.cpu_max_batch_size
        size = o.max_batch_size or default
        return BatchConfig(
            max_batch_size=size if t.batching else 1,
            max_wait_ms=_first(o.max_wait_ms, t.max_wait_ms, 2.0 if on_gpu else 0.0),
            max_queue=o.max_queue or t.max_queue,
            workers=max(1, o.workers or workers),
            retry_after_s=t.retry_after_s,
            interactive_reserve_s=t.interactive_reserve_s,
            max_queue_wait_s=o.max_queue_wait_s or t.max_queue_wait_s,
        )

    def _session(
        self, spec: ModelSpec, role: str, state: ModelState, workers: int = 1
    ) -> tuple[Any, bool]:
        """(session, runs on GPU). On CPU with several workers, an `AdaptiveSession`: all the
        cores for a call that runs alone, a share of them when calls overlap."""
        threads = self.intra_op_threads(spec)
        path = self.manifest.path(spec, role)
        opts = SessionOptions(self.tuning.policy, threads, self.tuning.gpu_mem_limit_mb)
        session = create_session(path, opts)
        state.provider = active_provider(session)
        on_gpu = state.provider in GPU_PROVIDERS
        o = self.tuning.overrides.get(spec.name, ServingOverride())
        workers = o.workers or workers
        if on_gpu or workers < 2 or threads < 2:
            return session, on_gpu
        share = SessionOptions("cpu", max(1, threads // workers))
        return AdaptiveSession(session, create_session(path, share)), False

    def _batcher(self, name: str, fn: Callable[..., Any], cfg: BatchConfig) -> Batcher[Any, Any]:
        return Batcher(name, fn, cfg, self.metrics.observer(name))

    def _build(self, spec: ModelSpec, state: ModelState) -> tuple[Loaded, list[Batcher[Any, Any]]]:
        warm = np.zeros((64, 96, 3), np.uint8)
        if spec.task == "detect":
            session, gpu = self._session(spec, "onnx", state, spec.serving.workers)
            det = DETECTORS[spec.adapter](session, spec.input, self.manifest.labels(spec))
            _warm(session, lambda: det.run_batch([det.preprocess(warm, 1.0)]))
            b = self._batcher(
                spec.name, det.run_batch, self._config(spec, spec.serving.workers, gpu)
            )
            return LoadedDetector(spec, det, b), [b]
        if spec.task == "segment":
            enc_session, gpu = self._session(spec, "encoder", state)
            enc = SamEncoder(enc_session, spec.input)
            dec_session = self._session(spec, "decoder", state, spec.serving.decoder_workers)[0]
            dec = SamDecoder(dec_session)
            ecfg = self._config(spec, spec.serving.workers, gpu)
            dcfg = self._config(spec, spec.serving.decoder_workers, gpu)
            emb = enc.run_batch([enc.preprocess(warm)])[0]
            click = DecodeItem(
                emb,
                np.array([[10.0, 10.0], [0.0, 0.0]], np.float32),
                np.array([1.0, -1.0], np.float32),
            )
            _warm(dec_session, lambda: dec.decode(click))
            eb = self._batcher(f"{spec.name}/encoder", enc.run_batch, ecfg)
            db = self._batcher(f"{spec.name}/decoder", dec.run_batch, dcfg)
            return LoadedSam(spec, enc, dec, eb, db), [eb, db]
        if spec.task == "ocr":
            return self._build_ocr(spec, state)
        if spec.task == "keypoints":
            session, gpu = self._session(spec, "onnx", state, spec.serving.workers)
            mn = MoveNet(session, spec.keypoints, spec.input.width or 256)
            _warm(session, lambda: mn.run_batch([mn.preprocess(warm)]))
            kb = self._batcher(
                spec.name, mn.run_batch, self._config(spec, spec.serving.workers, gpu)
            )
            return LoadedKeypoints(spec, mn, kb), [kb]
        if spec.task == "embed":
            session, gpu = self._session(spec, "onnx", state, spec.serving.workers)
            se = SentenceEmbedder(
                session, self.manifest.path(spec, "tokenizer"), spec.input.max_tokens
            )
            _warm(session, lambda: se.run_batch(["Warm up."]))
            cfg = self._config(spec, spec.serving.workers, gpu)
            sb = self._batcher(spec.name, se.run_batch, cfg)
            return LoadedEmbedder(spec, se, sb), [sb]
        if spec.adapter == "spacy":
            assert spec.package, f"{spec.name}: a spacy model needs `package`"
            try:
                nlp = SpacyNer(spec.package)
            except OSError as e:
                raise ModelMissing(
                    f"model {spec.name!r}: Python package {spec.package} is not installed; "
                    "run `pip install -e '.[cpu]'` (it is a pinned dependency)"
                ) from e
            nlp.run_batch(["Warm up."])
            tagger = SpacyTagger(spec.package)
            tagger.run_batch(["Warm up."])
            state.provider = "spacy-cpu"
            cfg = self._config(spec, spec.serving.workers, False)
            b = self._batcher(spec.name, nlp.run_batch, cfg)
            tb = self._batcher(f"{spec.name}/tokens", tagger.run_batch, cfg)
            return LoadedNer(spec, nlp.labels, spans=b, tagged=tb), [b, tb]
        session, gpu = self._session(spec, "onnx", state, spec.serving.workers)
        tc = TokenClassifier(
            session,
            self.manifest.path(spec, "tokenizer"),
            self.manifest.path(spec, "config"),
            spec.input.max_tokens,
            spec.input.stride,
        )
        _warm(session, lambda: tc.run_batch(["Warm up."]))
        b = self._batcher(spec.name, tc.run_batch, self._config(spec, spec.serving.workers, gpu))
        return LoadedNer(spec, tc.labels, tokens=b), [b]

    def _build_ocr(
        self, spec: ModelSpec, state: ModelState
    ) -> tuple[Loaded, list[Batcher[Any, Any]]]:
        """PP-OCR: detector and recogniser (+ direction classifier) sessions, a batcher each
        for detection (`<name>/det`) and reading (`<name>/rec`)."""
        det_session, gpu = self._session(spec, "det", state, spec.serving.workers)
        rec_session = self._session(spec, "rec", state, spec.serving.workers)[0]
        has_cls = any(f.role == "cls" for f in spec.files)
        cls_session = self._session(spec, "cls", state)[0] if has_cls else None
        det = OcrDetector(det_session)
        rec = OcrRecognizer(rec_session, cls_session)
        warm = det.preprocess(np.full((64, 96, 3), 255, np.uint8))
        assert warm is not None
        _warm(det_session, lambda: det.run_batch([warm]))
        _warm(rec_session, lambda: rec.run_batch([np.full((48, 160, 3), 255, np.uint8)]))
        cfg = self._config(spec, spec.serving.workers, gpu)
        db = self._batcher(f"{spec.name}/det", det.run_batch, cfg)
        rb = self._batcher(f"{spec.name}/rec", lambda items: [rec.run_batch(c) for c in items], cfg)
        return LoadedOcr(spec, det, rec, db, rb), [db, rb]


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def _warm(session: Any, call: Callable[[], object]) -> None:
    """One forward before the model is ready (on each session of an `AdaptiveSession`)."""
    if isinstance(session, AdaptiveSession):
        session.warm_up(call)
    else:
        call()
