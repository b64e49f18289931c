"""ONNX Runtime session factory: provider policy, thread settings, bounded CUDA arena.

The provider actually used is read back from `session.get_providers()`: onnxruntime-gpu on a
machine without CUDA still lists CUDA as *available* and silently runs on CPU, so availability
proves nothing.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import ProviderPolicy
from app.errors import ProviderUnavailable

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("CUDAExecutionProvider",)


@dataclass(frozen=True)
class SessionOptions:
    policy: ProviderPolicy
    intra_op_threads: int
    gpu_mem_limit_mb: int | None = None


def usable_cores() -> int:
    """Cores this process may run on (affinity and cgroup CPU quota), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:  # cgroup v2 quota, as set by Kubernetes CPU limits
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def installed_runtime() -> str:
    """Which ONNX Runtime distribution is installed; raise if none or both (they clash)."""
    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            found.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    if not found:
        raise RuntimeError("ONNX Runtime is not installed: pip install -e '.[cpu]' (or '.[gpu]')")
    if len(found) > 1:
        raise RuntimeError(
            f"both {found[0]} and {found[1]} are installed; they overwrite each other's "
            "`onnxruntime` module. Uninstall both and install exactly one."
        )
    return found[0]


def _providers(opts: SessionOptions) -> list[Any]:
    if opts.policy == "cpu":
        return ["CPUExecutionProvider"]
    cuda: dict[str, Any] = {"arena_extend_strategy": "kSameAsRequested"}
    if opts.gpu_mem_limit_mb:
        cuda["gpu_mem_limit"] = opts.gpu_mem_limit_mb * 1024 * 1024
    return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]


_preloaded = False


def _preload_cuda(ort: Any) -> None:
    """Load CUDA and cuDNN from the nvidia-* wheels that `onnxruntime-gpu[cuda,cudnn]`
    installs (onnxruntime >= 1.21), so a plain pip install finds them without LD_LIBRARY_PATH.
    Once per process; libraries already loaded (a CUDA base image) are left alone."""
    global _preloaded
    if _preloaded or not hasattr(ort, "preload_dlls"):
        return
    try:
        ort.preload_dlls()
    except Exception as e:  # the session's own provider check reports what is still missing
        log.warning("onnxruntime.preload_dlls() failed: %s", e)
    _preloaded = True


def create_session(path: Path, opts: SessionOptions) -> Any:
    """Open `path` as an `onnxruntime.InferenceSession` under the provider policy.

    Raises `ProviderUnavailable` when the policy is `require-gpu` and the session did not get
    CUDA. `prefer-gpu` falls back to CPU with a warning that names the reason.
    """
    import onnxruntime as ort  # heavy import kept out of module import

    so = ort.SessionOptions()
    so.intra_op_num_threads = opts.intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn the cores the HTTP stack and the other pipelines need.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    available = ort.get_available_providers()
    if opts.policy != "cpu" and "CUDAExecutionProvider" in available:
        _preload_cuda(ort)
    providers = [p for p in _providers(opts) if (p if isinstance(p, str) else p[0]) in available]
    session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
    active = session.get_providers()
    on_gpu = any(p in active for p in GPU_PROVIDERS)
    if opts.policy == "require-gpu" and not on_gpu:
        raise ProviderUnavailable(
            f"provider policy require-gpu, but ONNX Runtime runs {path.name} on {active} "
            f"(available: {available}); install onnxruntime-gpu with CUDA "
            "or set PRELABEL_PROVIDER=prefer-gpu / cpu"
        )
    if opts.policy == "prefer-gpu" and not on_gpu:
        log.warning("prefer-gpu: %s runs on CPU (providers in use: %s)", path.name, active)
    return session


def active_provider(session: Any) -> str:
    """The provider that runs the graph: the first of `session.get_providers()`."""
    return str(session.get_providers()[0])
