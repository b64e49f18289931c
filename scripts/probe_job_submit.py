"""/livez latency while a real `prelabel serve` takes the largest job, and again while it resumes
that job after a restart; plus the server's memory. Prints numbers (no pass/fail).

    .venv/bin/python scripts/probe_job_submit.py                 # 1,000,000 paths
    .venv/bin/python scripts/probe_job_submit.py --items 200000
    .venv/bin/python scripts/probe_job_submit.py --repo /tmp/old  # another checkout's code

A thread asks /livez every 50 ms and records each latency (a request that waits for the event
loop waits as long as it is blocked). The job's items are paths that do not exist (each fails
fast once the job runs); the job runs with concurrency 1 so the resume phase measures mostly
the start. Memory: the server's VmRSS before and after the submission, and its peak (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def start(repo: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRELABEL_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from app.cli.main import main; raise SystemExit(main())",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        cwd=repo,
        env={**clean, "PYTHONPATH": str(repo), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, f"http://127.0.0.1:{match.group(1)}"
    raise SystemExit("the server did not start")


def memory(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            name, value = line.split(":")
            out[name] = int(value.split()[0]) / 1024
    return out


class Livez:
    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, float]] = []  # (time sent, latency)
        self.pending: float | None = None  # when the probe now waiting was sent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as c:
            while not self.stop.is_set():
                t0 = self.pending = time.monotonic()
                try:
                    c.get("/livez")
                except httpx.HTTPError:
                    return  # the server is going away
                self.pending = None
                self.samples.append((t0, time.monotonic() - t0))
                time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))

    def between(self, t0: float, t1: float) -> str:
        lat = [lat for t, lat in self.samples if t0 <= t <= t1]
        pending = self.pending
        if pending is not None and t0 <= pending <= t1:  # still unanswered: at least this late
            lat.append(time.monotonic() - pending)
        lat.sort()
        if not lat:
            return "no probes"
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        return f"{len(lat)} probes, p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--repo", type=Path, default=ROOT)
    ap.add_argument("--after-s", type=float, default=10.0, help="probe this long after each")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="probe-jobs-"))
    (tmp / "in").mkdir()
    env = {
        "PRELABEL_MODELS": '["nanodet-g"]',
        "PRELABEL_DEFAULT_SAM": "",
        "PRELABEL_DEFAULT_NER": "",
        "PRELABEL_JOBS_DB": str(tmp / "jobs.db"),
        "PRELABEL_JOB_INPUT_ROOTS": str(tmp / "in"),
        "PRELABEL_MAX_JOB_ITEMS": str(args.items),
        "PRELABEL_JOB_CONCURRENCY": "1",
    }
    body = (
        '{"task":"detect","items":['
        + ",".join(f'"img/{i:07d}.jpg"' for i in range(args.items))
        + "]}"
    ).encode()
    proc, url = start(args.repo, env)
    try:
        livez = Livez(url)
        before = memory(proc.pid)
        t0 = time.monotonic()
        with httpx.Client(base_url=url, timeout=600) as c:
            r = c.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
        t1 = time.monotonic()
        print(
            f"submit of {args.items:,} paths ({len(body) / 1e6:.1f} MB): {r.status_code} in "
            f"{t1 - t0:.1f} s; /livez meanwhile: {livez.between(t0, t1)}"
        )
        time.sleep(args.after_s)
        print(
            f"/livez in the {args.after_s:.0f} s after (the job starting): "
            f"{livez.between(t1, time.monotonic())}"
        )
        after = memory(proc.pid)
        print(
            f"server RSS {before['VmRSS']:.0f} -> {after['VmRSS']:.0f} MiB, "
            f"peak {after['VmHWM']:.0f} MiB"
        )
        livez.stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        proc, url = start(args.repo, env)
        t2 = time.monotonic()
        livez = Livez(url)
        time.sleep(args.after_s)
        print(
            f"/livez in the {args.after_s:.0f} s after a restart (the job resuming): "
            f"{livez.between(t2, time.monotonic())}"
        )
        livez.stop.set()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


if __name__ == "__main__":
    main()
