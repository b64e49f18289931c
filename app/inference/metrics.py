"""Prometheus metrics, held in a registry per runtime (no global state, so tests stay isolated)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.inference.batcher import Lane

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
# Why HTTP requests were refused (`prelabel_rejections_total{reason}`); every reason is exported
# from the start at 0, so a rate() over it never starts from a missing series.
REJECTION_REASONS = (
    "queue_full",
    "deadline",
    "too_large",
    "url_blocked",
    "bomb",
    "unauthorized",
    "rate_limited",
    "shutting_down",
    "too_slow",
)


class Metrics:
    """Every metric Prelabel exports; `registry` is what `/metrics` renders."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "prelabel_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "prelabel_request_seconds",
            "HTTP latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "prelabel_batch_size",
            "Items per model forward",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.compute_seconds = Histogram(
            "prelabel_compute_seconds",
            "Wall time of one batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "prelabel_queue_wait_seconds",
            "Time an item waited in the queue",
            ["model", "lane"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "prelabel_queue_depth",
            "Items waiting per model and lane",
            ["model", "lane"],
            registry=r,
        )
        self.rejected = Counter(
            "prelabel_rejected",
            "Items refused or expired",
            ["model", "lane", "reason"],
            registry=r,
        )
        self.rejections = Counter(
            "prelabel_rejections",
            "HTTP requests refused, by reason: " + ", ".join(REJECTION_REASONS),
            ["reason"],
            registry=r,
        )
        for reason in REJECTION_REASONS:
            self.rejections.labels(reason)
        # kind: prediction, embedding, webhook; reason: an error code (a closed set), "internal"
        # or "over_capacity".
        self.ls_background_failures = Counter(
            "prelabel_ls_background_failures",
            "Label Studio work that failed with no caller waiting, by kind and reason",
            ["kind", "reason"],
            registry=r,
        )
        self.cache_hits = Counter(
            "prelabel_embedding_cache_hits", "SAM embedding cache hits", ["model"], registry=r
        )
        self.cache_misses = Counter(
            "prelabel_embedding_cache_misses", "SAM embedding cache misses", ["model"], registry=r
        )
        self.cache_bytes = Gauge(
            "prelabel_embedding_cache_bytes", "Bytes held by the embedding cache", registry=r
        )
        self.encoder_runs = Counter(
            "prelabel_sam_encoder_runs",
            "SAM image-encoder runs (one per image)",
            ["model"],
            registry=r,
        )
        self.provider = Gauge(
            "prelabel_model_provider",
            "1 for the execution provider each model runs on",
            ["model", "provider"],
            registry=r,
        )
        self.model_ready = Gauge(
            "prelabel_model_ready",
            "1 when the model is loaded and warmed up",
            ["model"],
            registry=r,
        )

    def observer(self, model: str) -> BatcherMetrics:
        return BatcherMetrics(self, model)


class BatcherMetrics:
    """`BatchObserver` for one batcher, labelled with its model (or `model/stage`)."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._m = metrics
        self._model = model

    def batch_done(self, size: int, compute_s: float) -> None:
        self._m.batch_size.labels(self._model).observe(size)
        self._m.compute_seconds.labels(self._model).observe(compute_s)

    def queue_wait(self, lane: Lane, wait_s: float) -> None:
        self._m.queue_wait_seconds.labels(self._model, lane.name.lower()).observe(wait_s)

    def depth(self, lane: Lane, depth: int) -> None:
        self._m.queue_depth.labels(self._model, lane.name.lower()).set(depth)

    def rejected(self, lane: Lane, reason: str) -> None:
        self._m.rejected.labels(self._model, lane.name.lower(), reason).inc()
