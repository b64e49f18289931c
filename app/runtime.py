"""The composition root: settings -> manifest -> registry (sessions, batchers) -> caches ->
use cases. The HTTP app and the CLI both build exactly this; nothing here runs at import."""

from __future__ import annotations

import asyncio
import logging
import time

from PIL import Image

from app.config import Settings
from app.domain.classify.limits import Limits as ClassifyLimits
from app.domain.classify.postgres_store import PostgresProjectStore
from app.domain.classify.projects import Projects
from app.domain.classify.service import TextClassifier
from app.domain.classify.span_trainer import SpanTrainer
from app.domain.classify.spans import SpanProjects
from app.domain.classify.sqlite_store import SqliteProjectStore
from app.domain.classify.store import ProjectStore
from app.domain.classify.trainer import Trainer
from app.domain.detection import DetectionService
from app.domain.images import ImageLimits
from app.domain.keypoints import KeypointService
from app.domain.labelstudio.choices import LsChoices
from app.domain.labelstudio.events import EventLog
from app.domain.labelstudio.fetch import TaskDataFetcher
from app.domain.labelstudio.kinds import KindServices
from app.domain.labelstudio.learning import LsLearning
from app.domain.labelstudio.predict import LabelStudioPredictor
from app.domain.labelstudio.projects import LsOrigins, LsProjects
from app.domain.labelstudio.tasks import LsModels, TaskPredictor
from app.domain.ner import NerService
from app.domain.ocr import OcrService
from app.domain.segmentation import (
    LowResMask,
    SegmentationService,
    embedding_nbytes,
    low_res_nbytes,
)
from app.domain.tokens import TokenService
from app.domain.urls import SafeFetcher, UrlPolicy
from app.inference.cache import TTLCache
from app.inference.manifest import Manifest
from app.inference.metrics import Metrics
from app.inference.registry import ModelRegistry, Tuning
from app.inference.sam import Embedding
from app.inference.session import installed_runtime, usable_cores

log = logging.getLogger(__name__)


class Runtime:
    """Everything a running Prelabel holds. `start()` loads and warms every configured model
    (blocking work runs on a worker thread); `stop()` drains the batchers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        self.metrics = Metrics()
        self.manifest = Manifest.load(s.model_dir)
        self.cores = s.cpu_count or usable_cores()
        self.registry = ModelRegistry(
            self.manifest,
            s.models,
            Tuning(
                policy=s.provider,
                cores=self.cores,
                batching=s.batching,
                max_wait_ms=s.max_wait_ms,
                max_queue=s.max_queue,
                max_queue_wait_s=s.max_queue_wait_s,
                retry_after_s=s.retry_after_s,
                gpu_mem_limit_mb=s.gpu_mem_limit_mb,
                overrides=s.serving,
                interactive_reserve_s=s.interactive_reserve_s,
            ),
            self.metrics,
        )
        limits = ImageLimits(s.max_upload_bytes, s.max_image_pixels)
        # Pillow refuses images over 2x its global MAX_IMAGE_PIXELS before our own check runs.
        if (Image.MAX_IMAGE_PIXELS or 0) * 2 < s.max_image_pixels:
            Image.MAX_IMAGE_PIXELS = s.max_image_pixels
        self.embeddings: TTLCache[Embedding] = TTLCache(
            s.embedding_cache_bytes,
            s.embedding_ttl_s,
            embedding_nbytes,
            on_change=self.metrics.cache_bytes.set,
        )
        self.low_res: TTLCache[LowResMask] = TTLCache(
            s.mask_cache_bytes, s.mask_ttl_s, low_res_nbytes
        )
        self.detection = DetectionService(self.registry, limits, s.request_timeout_s)
        self.segmentation = SegmentationService(
            self.registry,
            self.metrics,
            limits,
            s.request_timeout_s,
            s.max_points,
            self.embeddings,
            self.low_res,
        )
        self.ner = NerService(self.registry, s.max_texts, s.max_text_chars, s.request_timeout_s)
        self.ocr = OcrService(self.registry, limits, s.request_timeout_s)
        self.keypoints = KeypointService(self.registry, limits, s.request_timeout_s)
        self.tokens = TokenService(
            self.registry, s.max_texts, s.max_text_chars, s.request_timeout_s
        )
        # Text classification: project examples and models in PostgreSQL (`state_dsn`, shared by
        # replicas) or SQLite (`state_db`; in memory when unset).
        self.project_store: ProjectStore = (
            PostgresProjectStore(s.state_dsn.get_secret_value())
            if s.state_dsn is not None
            else SqliteProjectStore(s.state_db)
        )
        climits = ClassifyLimits(
            s.max_texts, s.max_text_chars, s.max_examples_per_call, s.max_project_examples
        )
        self.projects = Projects(self.project_store, climits, s.auto_train)
        self.classifier = TextClassifier(
            self.registry, s.default_embedder, self.projects, climits, s.request_timeout_s
        )
        emb = self.manifest.models.get(s.default_embedder)
        self.projects.trainer = Trainer(
            self.project_store,
            self.classifier.embed_bulk,
            f"{s.default_embedder}@{emb.version if emb else '?'}",
            s.train_timeout_s,
        )
        self.projects.span_trainer = SpanTrainer(self.project_store, s.span_train_timeout_s)
        self.spans = SpanProjects(self.projects, self.ner, s.default_ner)
        self.ls_projects = LsProjects(
            self._models_version(),
            LsOrigins(
                s.label_studio_url,
                s.label_studio_token.get_secret_value() if s.label_studio_token else None,
                s.ls_allowed_origins,
            ),
            s.ls_max_projects,
        )
        self.events = EventLog(s.events_path)
        # Every untrusted URL (image_url, Label Studio task data, batch inputs) goes through it.
        self.url_fetcher = SafeFetcher(UrlPolicy.from_settings(s))
        self.ls_fetcher = TaskDataFetcher(self.url_fetcher, s.ls_allow_external_urls)
        ls_models = LsModels(
            s.default_detector,
            s.default_sam,
            s.default_ner,
            s.ls_score_threshold,
            s.ls_label_aliases,
            **self._ls_kinds(),
        )
        # Label Studio Choices and Labels learned from its annotations (the project store above).
        self.ls_learning = LsLearning(
            self.projects,
            LsChoices(self.projects, self.classifier, self.spans),
            self.ls_fetcher,
            on_failure=self._count_ls_failure,
        )
        self.ls_predictor = LabelStudioPredictor(
            self.ls_projects,
            self.ls_fetcher,
            TaskPredictor(
                self.detection,
                self.segmentation,
                self.ner,
                ls_models,
                KindServices(self.ocr, self.keypoints, self.tokens),
            ),
            self.segmentation,
            ls_models,
            s.ls_budget_s,
            TTLCache(256 * 1024 * 1024, 600.0, len),
            max_regions=s.max_points + 1,
            pending_bytes=s.ls_pending_bytes,
            max_precompute=s.ls_max_precompute,
            on_failure=self._count_ls_failure,
            learning=self.ls_learning,
        )
        self.onnxruntime = "unknown"
        self.started = False
        # Shutdown (app/cli/serve.py, app/api/admission.py): readiness false, new requests 503.
        self.draining = False
        self.drain_deadline: float | None = None  # time.monotonic() by which stop() must end
        self.in_flight = 0  # HTTP requests being served, probes excluded (AdmissionMiddleware)

    def _count_ls_failure(self, kind: str, reason: str) -> None:
        self.metrics.ls_background_failures.labels(kind, reason).inc()

    def _ls_kinds(self) -> dict[str, str]:
        """Label Studio's keypoint and OCR models (when loaded) and its POS model (the NER)."""
        s = self.settings
        return {
            "keypoints": s.default_keypoints if s.default_keypoints in s.models else "",
            "ocr": s.default_ocr if s.default_ocr in s.models else "",
            "tokens": s.default_ner,
        }

    def _models_version(self) -> str:
        """The default models and their versions: part of every Label Studio model_version."""
        s = self.settings
        kinds = self._ls_kinds()
        names = [n for n in (s.default_detector, s.default_sam, s.default_ner) if n]
        names += [n for n in (kinds["keypoints"], kinds["ocr"]) if n]
        return ",".join(f"{n}={self.manifest.get(n).version}" for n in names)

    async def start(self) -> None:
        t0 = time.perf_counter()
        try:
            self.onnxruntime = installed_runtime()
        except RuntimeError as e:
            for state in self.registry.states.values():
                state.status, state.error = "failed", str(e)
            log.error("%s", e)
            return
        await asyncio.to_thread(self.registry.load_all)
        self.started = True
        log.info(
            "runtime started in %.1f s (%s, %d cores): %s",
            time.perf_counter() - t0,
            self.onnxruntime,
            self.cores,
            {n: s.status for n, s in self.registry.states.items()},
        )

    def begin_drain(self, deadline: float | None = None) -> None:
        """Shutdown has begun: /readyz answers 503 at once and new requests get 503
        `shutting_down`; requests in flight and queued batches carry on. `deadline`
        (`time.monotonic()`) bounds the drain in `stop()`. Cheap and lock-free: it is called
        from a signal handler."""
        self.draining = True
        self.drain_deadline = deadline

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Close the fetchers, trainers and store, then drain the batchers. Whoever runs jobs on
        this runtime (app/main.py's lifespan) stops them first, so job items stop arriving."""
        await self.url_fetcher.aclose()
        await self.ls_learning.jobs.stop()  # before the trainer: they wait on its runs
        if self.projects.trainer is not None:
            await self.projects.trainer.stop()
        if self.projects.span_trainer is not None:
            await self.projects.span_trainer.stop()  # kills training processes
        await asyncio.to_thread(self.project_store.close)
        if self.drain_deadline is not None:  # SIGTERM: stay inside the grace period
            left = self.drain_deadline - time.monotonic()
            drain_timeout_s = max(0.1, min(drain_timeout_s, left))
        await asyncio.to_thread(self.registry.stop_all, True, drain_timeout_s)
        self.embeddings.clear()
        self.low_res.clear()
        self.started = False

    @property
    def ready(self) -> bool:
        return self.started and not self.draining and self.registry.ready
