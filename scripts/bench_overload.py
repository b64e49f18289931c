"""Benchmark: overload and soak of the served detector (issue 5's bounded load test).

Run from the project root with the project's venv (`.venv/bin/python scripts/bench_overload.py`;
it imports the server harness from the sibling `benchlib.py`, so run it as a file).
`--soak-s 60` for a short check (the default, 600 s, is the issue's 10-minute soak), `--json
PATH` to keep the numbers. It stops by itself: every loop is bounded in count and in time.

Methodology
-----------
`prelabel serve` on 127.0.0.1 and a free port with only NanoDet-g (PRELABEL_MODELS=
'["nanodet-g"]', no SAM, no NER, default scheduler settings unless `--env KEY=VALUE` says
otherwise). Requests are multipart JPEG uploads (quality 90) of the scikit-image samples of
`benchlib.SAMPLE_NAMES`, round-robin, POST /v1/detect, sent by `httpx.AsyncClient` from this
process (the server is a separate process; both share the machine's cores).

1. Sustainable rate: after a warm-up, closed loop at `--concurrency` (16) requests in flight for
   `--calibrate-s` seconds (10): replies per second of wall time. `--rate R` skips this.
2. Overload and soak: open loop (arrivals at a fixed rate, whatever the replies do, so a slow
   server cannot slow the load down) at `--factor` (2) x that rate, for `--soak-s` seconds.
   Latency is measured from each request's scheduled send time (no coordinated omission: a
   client-side delay counts against the server). At most `--max-outstanding` requests are in
   flight, spread over 16 clients (one httpx client with hundreds pending is itself the
   bottleneck); an arrival beyond that is counted as `client_full` (the server was not
   shedding).
   After the last arrival, outstanding replies are awaited for up to the request deadline + 10
   s; any still missing count as `unfinished`.
   Every reply is 200 (admitted), 429 (shed) or something else (an error: must be 0).
   The soak is cut into `--windows` windows to show whether latency and memory stay flat.
3. Memory: the server's RSS (VmRSS from /proc/<pid>/status) right after start-up, at the
   start of the soak (after calibration), every `--rss-every` seconds, and at its end.
   /metrics is read before and after the soak for the scheduler's own counts.

CPU: the machine has 2 cores shared by the server, this client (~2.5 ms of CPU per request)
and whatever else runs; "other" is every unrelated process (above 0.15 cores the numbers are
marked "!" and noisy; see `bench_detect.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    CpuMeter,
    SampleImage,
    cpu_text,
    default_prelabel,
    fmt,
    hist_max,
    hist_mean,
    make_console,
    metric,
    noise_warning,
    percentiles,
    sample_jpegs,
    scrape,
    serve,
    verdict,
)
from rich.table import Table

DEADLINE_S = 30.0  # PRELABEL_REQUEST_TIMEOUT_S default; replies are awaited this long + 10 s
# Idle connections are dropped before uvicorn's own 5 s keep-alive timeout closes them: with
# equal timeouts a request can go out on a connection the server is closing (a ReadError that
# says nothing about overload).
KEEPALIVE_S = 2.0
# One httpx.AsyncClient slows down badly with hundreds of requests pending on its pool
# (encode/httpx#3215). Measured here (`ss` during a run): with ~1000 requests pending in one
# client, under 150 connections were open, the server had read every byte sent to it and the
# client had responses it had not read, while client-side latency reached 70 s: the load
# generator, not the server, was queueing. Requests are spread over several small-pool clients.
CLIENT_SHARDS = 16


def rss_mib(pid: int) -> float:
    """VmRSS of `pid` in MiB (NaN when /proc cannot tell)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


@dataclass(frozen=True)
class Reply:
    sent: float  # scheduled send time, seconds after the soak started
    ms: float  # from the scheduled send time to the reply (or the failure)
    outcome: str  # "200", "429", another status, or an exception's class name


def _post(client: httpx.AsyncClient, url: str, image: SampleImage) -> Any:
    return client.post(url, files={"file": (f"{image.name}.jpg", image.jpeg, "image/jpeg")})


async def closed_loop(
    url: str, images: Sequence[SampleImage], concurrency: int, duration_s: float
) -> tuple[float, list[float], Counter[str]]:
    """(replies/s, latencies of the 200s in ms, outcomes) of `concurrency` looping clients."""
    limits = httpx.Limits(
        max_connections=concurrency,
        max_keepalive_connections=concurrency,
        keepalive_expiry=KEEPALIVE_S,
    )
    outcomes: Counter[str] = Counter()
    lat: list[float] = []
    async with httpx.AsyncClient(timeout=DEADLINE_S + 10, limits=limits) as client:
        t0 = time.perf_counter()
        end = t0 + duration_s

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < end:
                t = time.perf_counter()
                try:
                    r = await _post(client, url, images[i % len(images)])
                    outcomes[str(r.status_code)] += 1
                    if r.status_code == 200:
                        lat.append((time.perf_counter() - t) * 1000)
                except httpx.HTTPError as e:
                    outcomes[type(e).__name__] += 1
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall = time.perf_counter() - t0
    return outcomes["200"] / wall, lat, outcomes


@dataclass
class Soak:
    replies: list[Reply] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)
    offered: int = 0
    max_lag_ms: float = 0.0  # how late the client sent its worst arrival
    max_outstanding: int = 0


async def open_loop(
    url: str,
    images: Sequence[SampleImage],
    rate: float,
    duration_s: float,
    max_outstanding: int,
    pid: int,
    rss_every_s: float,
) -> Soak:
    """Arrivals every 1/rate s for duration_s; every outcome recorded (see the module doc)."""
    soak = Soak()
    n = int(rate * duration_s)
    per_client = -(-max_outstanding // CLIENT_SHARDS)
    limits = httpx.Limits(
        max_connections=per_client,
        max_keepalive_connections=per_client,
        keepalive_expiry=KEEPALIVE_S,
    )
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(timeout=DEADLINE_S + 10, limits=limits)
            )
            for _ in range(CLIENT_SHARDS)
        ]
        t0 = time.perf_counter()
        outstanding: set[asyncio.Task[None]] = set()

        async def one(i: int, sched: float) -> None:
            try:
                r = await _post(clients[i % CLIENT_SHARDS], url, images[i % len(images)])
                outcome = str(r.status_code)
            except httpx.HTTPError as e:
                outcome = type(e).__name__
            soak.replies.append(Reply(sched - t0, (time.perf_counter() - sched) * 1000, outcome))

        async def sample_rss() -> None:
            while True:
                soak.rss.append((time.perf_counter() - t0, rss_mib(pid)))
                await asyncio.sleep(rss_every_s)

        sampler = asyncio.create_task(sample_rss())
        for i in range(n):
            sched = t0 + i / rate
            delay = sched - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            soak.max_lag_ms = max(soak.max_lag_ms, (time.perf_counter() - sched) * 1000)
            soak.offered += 1
            if len(outstanding) >= max_outstanding:
                soak.replies.append(Reply(sched - t0, 0.0, "client_full"))
                continue
            task = asyncio.create_task(one(i, sched))
            outstanding.add(task)
            task.add_done_callback(outstanding.discard)
            soak.max_outstanding = max(soak.max_outstanding, len(outstanding))
        if outstanding:
            _, late = await asyncio.wait(list(outstanding), timeout=DEADLINE_S + 10)
            for task in late:
                task.cancel()
            soak.replies.extend(Reply(duration_s, float("nan"), "unfinished") for _ in late)
        sampler.cancel()
        soak.rss.append((time.perf_counter() - t0, rss_mib(pid)))
    return soak


@dataclass
class Window:
    start_s: float
    end_s: float
    offered_per_s: float
    admitted_per_s: float
    shed_fraction: float
    admitted: dict[str, float]
    rejected: dict[str, float]
    errors: dict[str, int]
    rss_mib: float


def windows(soak: Soak, duration_s: float, count: int) -> list[Window]:
    out = []
    width = duration_s / count
    for w in range(count):
        a, b = w * width, (w + 1) * width
        rs = [r for r in soak.replies if a <= r.sent < b or (w == count - 1 and r.sent >= b)]
        ok = [r.ms for r in rs if r.outcome == "200"]
        shed = [r.ms for r in rs if r.outcome == "429"]
        errors = Counter(r.outcome for r in rs if r.outcome not in ("200", "429"))
        rss = [m for t, m in soak.rss if t <= b]
        out.append(
            Window(
                a,
                b,
                len(rs) / width,
                len(ok) / width,
                len(shed) / max(1, len(rs)),
                percentiles(ok),
                percentiles(shed),
                dict(errors),
                rss[-1] if rss else float("nan"),
            )
        )
    return out


def print_report(
    console: Any,
    meta: dict[str, Any],
    calib: dict[str, Any],
    soak: Soak,
    wins: list[Window],
    deltas: dict[str, float],
    cores: dict[str, float],
) -> None:
    console.print(
        f"Overload benchmark  cores={meta['cores']}  load avg at start={meta['loadavg']}  "
        f"server env: {meta['env'] or 'defaults'}  soak {meta['soak_s']:.0f} s at "
        f"{meta['factor']}x"
    )
    t = Table(title="Sustainable rate: closed loop, POST /v1/detect")
    for col in ("concurrency", "seconds", "replies/s", "p50 ms", "p99 ms", "outcomes"):
        t.add_column(col, justify="right")
    t.add_row(
        str(calib["concurrency"]),
        fmt(calib["seconds"]),
        fmt(calib["rate"]),
        fmt(calib["p50_ms"]),
        fmt(calib["p99_ms"]),
        str(calib["outcomes"]),
    )
    console.print(t)

    rs = soak.replies
    ok = [r.ms for r in rs if r.outcome == "200"]
    shed = [r.ms for r in rs if r.outcome == "429"]
    errors = Counter(r.outcome for r in rs if r.outcome not in ("200", "429"))
    pa, pr = percentiles(ok), percentiles(shed)
    rss0, rss1 = soak.rss[0][1], soak.rss[-1][1]
    # Queued requests hold memory (a NanoDet input tensor is 2 MiB), so RSS climbs while the
    # queues fill; whether it is flat is judged from the first window's end on.
    rss_w1 = wins[0].rss_mib
    s = Table(
        title=f"Open loop at {meta['factor']}x the sustainable rate "
        f"({meta['offered_rate']:.1f} req/s offered) for {meta['soak_s']:.0f} s"
    )
    s.add_column("measure")
    s.add_column("value", justify="right")
    s.add_column("check", justify="right")
    s.add_row("requests offered (sent / scheduled)", f"{soak.offered} / {len(rs)}", "")
    s.add_row("admitted (200) per s", fmt(len(ok) / meta["soak_s"]), "")
    s.add_row("shed with 429", f"{len(shed) / max(1, len(rs)):.1%}", verdict(bool(shed)))
    s.add_row(
        "429 latency p50 / p99 / max ms",
        f"{fmt(pr['p50'])} / {fmt(pr['p99'])} / {fmt(pr['max'])}",
        "",
    )
    s.add_row(
        "admitted latency p50 / p99 / max ms",
        f"{fmt(pa['p50'])} / {fmt(pa['p99'])} / {fmt(pa['max'])}",
        "",
    )
    s.add_row(
        "errors other than 429",
        str(sum(errors.values())) + (f" {dict(errors)}" if errors else ""),
        verdict(not errors),
    )
    s.add_row("server RSS after start-up MiB", fmt(meta["rss_startup_mib"]), "")
    s.add_row(
        "server RSS soak start / after window 1 / end / max MiB",
        f"{fmt(rss0)} / {fmt(rss_w1)} / {fmt(rss1)} / {fmt(max(m for _, m in soak.rss))}",
        "",
    )
    s.add_row(
        "RSS growth after window 1 (flat: <= 20 MiB or 5 %)",
        f"{rss1 - rss_w1:+.1f} MiB ({(rss1 - rss_w1) / rss_w1:+.1%})",
        verdict(rss1 - rss_w1 <= max(20.0, 0.05 * rss_w1)),
    )
    s.add_row(
        "429 causes: in-flight cap / lane full / expected wait",
        f"{deltas['in_flight']:.0f} / {deltas['queue_full']:.0f} / {deltas['queue_wait']:.0f}",
        "",
    )
    s.add_row("scheduler: expired in the queue (deadline)", f"{deltas['deadline']:.0f}", "")
    s.add_row(
        "server-side /v1/detect time mean / max <= ms (from /metrics)",
        f"{fmt(deltas['server_mean_s'] * 1000)} / {fmt(deltas['server_max_s'] * 1000)}",
        "",
    )
    s.add_row(
        "client: max outstanding / worst send lag ms",
        f"{soak.max_outstanding} / {fmt(soak.max_lag_ms)}",
        "",
    )
    s.add_row("cores server / bench / other", cpu_text(cores, "server", "bench", "other"), "")
    console.print(s)

    w = Table(title="Per window (is it flat?)")
    for col in (
        "window s",
        "offered/s",
        "200/s",
        "shed",
        "200 p50 ms",
        "200 p99 ms",
        "429 p99 ms",
        "errors",
        "RSS MiB",
    ):
        w.add_column(col, justify="right")
    for x in wins:
        w.add_row(
            f"{x.start_s:.0f}-{x.end_s:.0f}",
            fmt(x.offered_per_s),
            fmt(x.admitted_per_s),
            f"{x.shed_fraction:.1%}",
            fmt(x.admitted["p50"]),
            fmt(x.admitted["p99"]),
            fmt(x.rejected["p99"]),
            str(sum(x.errors.values())),
            fmt(x.rss_mib),
        )
    console.print(w)
    first, last = wins[0].admitted["p99"], wins[-1].admitted["p99"]
    console.print(
        f"admitted p99, first window {fmt(first)} ms, last {fmt(last)} ms: "
        f"{verdict(last <= 1.25 * first + 100)} (flat: last <= 1.25 x first + 100 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak-s", type=float, default=600.0, help="open-loop seconds (600)")
    parser.add_argument("--factor", type=float, default=2.0, help="x the sustainable rate (2)")
    parser.add_argument("--rate", type=float, default=None, help="skip calibration: this rate")
    parser.add_argument("--calibrate-s", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16, help="calibration clients (16)")
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--rss-every", type=float, default=5.0, help="RSS sampling period, s")
    parser.add_argument(
        "--max-outstanding",
        type=int,
        default=1024,
        help="client-side cap on requests in flight (arrivals over it count as client_full)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra server environment, e.g. PRELABEL_MAX_QUEUE=64",
    )
    parser.add_argument("--prelabel", type=Path, default=default_prelabel())
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from app.inference.session import usable_cores

    console = make_console()
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        console.print(f"[dim]{time.perf_counter() - t_start:6.1f}s  {msg}[/dim]")

    extra = dict(kv.split("=", 1) for kv in args.env)
    env = {
        "PRELABEL_MODELS": '["nanodet-g"]',
        "PRELABEL_DEFAULT_DETECTOR": "nanodet-g",
        "PRELABEL_DEFAULT_SAM": "",
        "PRELABEL_DEFAULT_NER": "",
        "PRELABEL_LOG_LEVEL": "warning",
        **extra,
    }
    images = sample_jpegs()
    meta: dict[str, Any] = {
        "cores": usable_cores(),
        "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "env": " ".join(args.env),
        "soak_s": args.soak_s,
        "factor": args.factor,
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp,
        serve(args.prelabel, env, Path(tmp)) as server,
    ):
        pid, url = server.proc.pid, f"{server.url}/v1/detect"
        meta["rss_startup_mib"] = rss_mib(pid)
        log(f"server ready in {server.startup_s:.1f} s, RSS {meta['rss_startup_mib']:.0f} MiB")
        asyncio.run(closed_loop(url, images, args.concurrency, 2.0))  # warm-up
        calib: dict[str, Any] = {
            "concurrency": args.concurrency,
            "seconds": 0.0,
            "rate": float("nan"),
            "p50_ms": float("nan"),
            "p99_ms": float("nan"),
            "outcomes": {},
        }
        if args.rate is None:
            log(f"calibrating: closed loop, {args.concurrency} in flight, {args.calibrate_s} s")
            rate, lat, outcomes = asyncio.run(
                closed_loop(url, images, args.concurrency, args.calibrate_s)
            )
            pct = percentiles(lat)
            calib.update(
                seconds=args.calibrate_s,
                rate=rate,
                p50_ms=pct["p50"],
                p99_ms=pct["p99"],
                outcomes=dict(outcomes),
            )
        else:
            rate = args.rate
        meta["sustainable_rate"] = rate
        meta["offered_rate"] = offered = args.factor * rate
        log(f"soak: open loop at {offered:.1f} req/s for {args.soak_s:.0f} s")
        before = scrape(server.url)
        meter = CpuMeter({"server": pid, "bench": os.getpid()})
        soak = asyncio.run(
            open_loop(url, images, offered, args.soak_s, args.max_outstanding, pid, args.rss_every)
        )
        cores = meter.stop()
        after = scrape(server.url)
        log("soak done")
    deltas = {
        reason: metric(after, "prelabel_rejected_total", reason=reason)
        - metric(before, "prelabel_rejected_total", reason=reason)
        for reason in ("queue_full", "queue_wait", "deadline")
    }
    # HTTP 429s counted at the edge, less those the scheduler refused: the in-flight cap's.
    http = metric(after, "prelabel_rejections_total", reason="queue_full") - metric(
        before, "prelabel_rejections_total", reason="queue_full"
    )
    deltas["in_flight"] = http - deltas["queue_full"] - deltas["queue_wait"]
    # The app's own view (first middleware to last byte): a client-side latency far above it
    # was spent outside the app (accept queue, a starved event loop, the client itself).
    route = {"route": "/v1/detect"}
    deltas["server_mean_s"] = hist_mean(before, after, "prelabel_request_seconds", **route)[1]
    deltas["server_max_s"] = hist_max(before, after, "prelabel_request_seconds", **route)
    wins = windows(soak, args.soak_s, max(1, args.windows))
    meta["wall_s"] = round(time.perf_counter() - t_start, 1)
    print_report(console, meta, calib, soak, wins, deltas, cores)
    noise_warning(console, [cores.get("other", 0.0)])
    console.print(f"total wall time {meta['wall_s']} s")
    if args.json:
        outcomes = Counter(r.outcome for r in soak.replies)
        args.json.write_text(
            json.dumps(
                {
                    "meta": meta,
                    "calibration": calib,
                    "outcomes": dict(outcomes),
                    "admitted": percentiles([r.ms for r in soak.replies if r.outcome == "200"]),
                    "rejected": percentiles([r.ms for r in soak.replies if r.outcome == "429"]),
                    "rss": soak.rss,
                    "windows": [asdict(w) for w in wins],
                    "rejected_by_reason": deltas,
                    "cores": cores,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
