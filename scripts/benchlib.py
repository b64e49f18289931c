"""The benchmarks' shared harness: sample images, a `prelabel serve` subprocess on a free port,
/metrics scraping and histogram deltas, CPU accounting from /proc (server, client, everything
else on the machine), quiet-machine waits, percentiles and the report helpers.

Imported by the sibling benchmarks (`from benchlib import ...`; run them as files, e.g.
`.venv/bin/python scripts/bench_detect.py`, so that scripts/ is on the import path). The
methodology these pieces implement (warm-ups, waits for a quiet machine, what "other" cores
mean) is described in bench_detect.py's docstring.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "logo",
    "hubble_deep_field",
    "camera",
)


@dataclass(frozen=True)
class SampleImage:
    name: str
    width: int
    height: int
    jpeg: bytes


def sample_jpegs(names: Sequence[str] = SAMPLE_NAMES, quality: int = 90) -> list[SampleImage]:
    """scikit-image samples as RGB JPEG bytes (grey -> 3 channels, RGBA -> alpha dropped)."""
    import skimage.data
    from PIL import Image

    out = []
    for name in names:
        arr = np.asarray(getattr(skimage.data, name)())
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        arr = np.ascontiguousarray(arr[:, :, :3]).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=quality)
        out.append(SampleImage(name, arr.shape[1], arr.shape[0], buf.getvalue()))
    return out


def percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "mean": float("nan")}
    p50, p99 = np.percentile(a, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(a.max()), "mean": float(a.mean())}


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_ticks() -> int | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(v) for v in fields[:8]]
    return sum(ticks) - ticks[3] - ticks[4]  # minus idle and iowait


def _pid_ticks(pid: int) -> int | None:
    """utime + stime of every thread of `pid`, in clock ticks."""
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(rest[11]) + int(rest[12])


class CpuMeter:
    """Cores used during a measured span, from /proc: per named process and by everyone else."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._t0 = time.perf_counter()
        self._machine0 = _machine_busy_ticks()
        self._pid0 = {k: _pid_ticks(p) for k, p in pids.items()}

    def stop(self) -> dict[str, float]:
        wall = max(time.perf_counter() - self._t0, 1e-9)
        machine1 = _machine_busy_ticks()
        cores: dict[str, float] = {}
        ours = 0.0
        for k, p in self.pids.items():
            a, b = self._pid0[k], _pid_ticks(p)
            if a is not None and b is not None:
                cores[k] = (b - a) / _TICK / wall
                ours += cores[k]
        if self._machine0 is not None and machine1 is not None:
            cores["machine"] = (machine1 - self._machine0) / _TICK / wall
            cores["other"] = max(0.0, cores["machine"] - ours)
        return cores


NOISY_OTHER_CORES = 0.15  # above this, unrelated processes took a real share of the 2 cores


def cpu_text(cores: dict[str, float], *keys: str) -> str:
    text = " / ".join(f"{cores[k]:.2f}" if k in cores else "-" for k in keys)
    return f"[yellow]{text}![/yellow]" if cores.get("other", 0.0) > NOISY_OTHER_CORES else text


def wait_idle(max_wait_s: float, window_s: float = 0.5) -> float:
    """Wait (at most `max_wait_s`) until the whole machine used under NOISY_OTHER_CORES for
    one `window_s` window. Call it only while our own processes are idle. Returns the wait."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait_s:
        a = _machine_busy_ticks()
        time.sleep(window_s)
        b = _machine_busy_ticks()
        if a is None or b is None or (b - a) / _TICK / window_s < NOISY_OTHER_CORES:
            break
    return time.perf_counter() - t0


def noise_warning(console: Console, others: Sequence[float]) -> None:
    bad = sum(o > NOISY_OTHER_CORES for o in others)
    if bad:
        console.print(
            f"[yellow]! {bad} of {len(others)} measurements ran while unrelated "
            f"processes used more than {NOISY_OTHER_CORES} cores (marked !): those "
            "numbers are low and noisy.[/yellow]"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_prelabel() -> Path:
    return Path(sys.executable).with_name("prelabel")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    startup_s: float

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@contextmanager
def serve(
    prelabel: Path, env_overrides: dict[str, str], log_dir: Path, ready_timeout_s: float = 180.0
) -> Iterator[Server]:
    """Start `prelabel serve` on a free port, yield once GET /readyz is 200, always stop it."""
    port = free_port()
    env = {**os.environ, **env_overrides}
    log_path = log_dir / f"server-{port}.log"
    t0 = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(prelabel), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log_path, 0.0)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {proc.returncode} before ready:\n{server.log_tail()}"
                )
            if time.perf_counter() - t0 > ready_timeout_s:
                raise RuntimeError(
                    f"server not ready after {ready_timeout_s} s:\n{server.log_tail()}"
                )
            try:
                if httpx.get(f"{server.url}/readyz", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        server.startup_s = time.perf_counter() - t0
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=10.0).text
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


def metric(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


def hist_mean(before: Samples, after: Samples, name: str, **labels: str) -> tuple[float, float]:
    """(count, mean) of a histogram's observations between two scrapes."""
    n = metric(after, f"{name}_count", **labels) - metric(before, f"{name}_count", **labels)
    s = metric(after, f"{name}_sum", **labels) - metric(before, f"{name}_sum", **labels)
    return n, (s / n if n else float("nan"))


def hist_max(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """Upper bound of the largest observation between two scrapes: the smallest bucket `le`
    that holds every new observation (NaN when there were none)."""
    total = metric(after, f"{name}_count", **labels) - metric(before, f"{name}_count", **labels)
    if not total:
        return float("nan")
    les = {
        dict(lab)["le"]
        for (n, lab), _ in after.items()
        if n == f"{name}_bucket" and set(labels.items()) <= lab
    }
    for le in sorted(les, key=float):
        new = metric(after, f"{name}_bucket", le=le, **labels) - metric(
            before, f"{name}_bucket", le=le, **labels
        )
        if new >= total:
            return float(le)
    return float("inf")


def make_console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=170)


def fmt(v: float, digits: int = 1) -> str:
    return "-" if v != v else f"{v:.{digits}f}"  # NaN -> "-"


def verdict(ok: bool) -> str:
    return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"
