"""Graceful shutdown of a real `prelabel serve` process (nanodet-g on a real photograph).

The server runs as a subprocess (tests/api/fault_server.py: the real CLI and model, plus a
fault hook that holds or hangs a batch on request), so SIGTERM, uvicorn's signal handling and
the process exit code are the real ones. Steps are ordered by the server's own log lines and
its /metrics, never by sleeps: requests are held inside the model until the test releases them,
so they are certainly in flight when SIGTERM arrives.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.api.fault_server import HANG, HOLD
from tests.conftest import SKIMAGE_DATA, runtime_of

PROJECT = Path(__file__).resolve().parents[2]
FAULT_SERVER = Path(__file__).with_name("fault_server.py")
ONLY_DETECTOR = {
    "PRELABEL_MODELS": '["nanodet-g"]',
    "PRELABEL_DEFAULT_SAM": "",
    "PRELABEL_DEFAULT_NER": "",
    "PRELABEL_LOG_LEVEL": "info",
}
WAIT_S = 120.0  # upper bound on any one wait, so a broken server fails the test, never hangs it


class ServerProcess:
    """The fault server on an ephemeral port; its merged stdout/stderr collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PRELABEL_")}
        self.proc = subprocess.Popen(
            [sys.executable, str(FAULT_SERVER), "0"],
            cwd=PROJECT,
            env={**clean, **ONLY_DETECTOR, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        running = self.wait_line(lambda s: "Uvicorn running on" in s)
        port = re.search(r"http://127\.0\.0\.1:(\d+)", running)
        assert port, running
        self.url = f"http://127.0.0.1:{port.group(1)}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, match: Callable[[str], bool], start: int = 0) -> str:
        """The first line from index `start` on that matches (waits for it)."""
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if match(line):
                        return line
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"server exited before the line came:\n{self.log}")
                assert self._cond.wait(WAIT_S), f"no such line in {WAIT_S} s:\n{self.log}"

    def count(self, prefix: str) -> int:
        """Sum of N over the `prefix N` lines so far (the fault hook's held items)."""
        with self._cond:
            return sum(int(s.split()[-1]) for s in self.lines if s.startswith(prefix))

    @property
    def log(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def stop(self) -> int:
        """Wait for the exit (after the test's SIGTERM); kill if it never comes."""
        try:
            return self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._reader.join(WAIT_S)
            assert self.proc.stdout is not None
            self.proc.stdout.close()


@pytest.fixture
def start_server() -> Iterator[Callable[[dict[str, str]], ServerProcess]]:
    servers: list[ServerProcess] = []

    def start(env: dict[str, str]) -> ServerProcess:
        servers.append(ServerProcess(env))
        return servers[-1]

    yield start
    for s in servers:
        if s.proc.poll() is None:
            s.proc.kill()
        s.stop()


def detect(client: httpx.Client, url: str, image: bytes, threshold: float) -> httpx.Response:
    files = {"file": ("astronaut.png", image, "image/png")}
    return client.post(f"{url}/v1/detect", files=files, data={"score_threshold": str(threshold)})


def queued(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            want = {"model": "nanodet-g", "lane": "interactive"}
            if s.name == "prelabel_queue_depth" and s.labels == want:
                return s.value
    return 0.0


def poll(check: Callable[[], bool], what: str, detail: Callable[[], str] = str) -> None:
    """Poll a condition the server offers no event for (readiness, queue depth). `detail` says
    what was seen when it times out (the server's log tail, say)."""
    end = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}: {detail()}"
        time.sleep(0.01)


def test_draining_refuses_new_work_but_answers_probes(astronaut_jpeg: bytes) -> None:
    settings = Settings(models=["nanodet-g"], default_sam="", default_ner="")
    with TestClient(create_app(settings)) as client:
        files = {"file": ("a.jpg", astronaut_jpeg, "image/jpeg")}
        assert client.post("/v1/detect", files=files).status_code == 200
        assert client.get("/readyz").status_code == 200
        runtime_of(client).begin_drain()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "shutting_down"
        refused = client.post("/v1/detect", files=files)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "shutting_down"
        assert refused.headers["retry-after"] == "1" and refused.headers["connection"] == "close"
        assert client.get("/livez").status_code == 200
        assert client.get("/health").json()["ready"] is False
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["connection"] == "close"
        assert 'prelabel_rejections_total{reason="shutting_down"} 1.0' in metrics.text
        assert runtime_of(client).in_flight == 0


@pytest.mark.slow
def test_sigterm_under_load_finishes_every_request_in_flight(
    start_server: Callable[[dict[str, str]], ServerProcess],
) -> None:
    server = start_server({})
    url = server.url
    image = (SKIMAGE_DATA / "astronaut.png").read_bytes()
    assert httpx.get(f"{url}/readyz").status_code == 200
    n = 16
    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    with httpx.Client(timeout=WAIT_S, limits=limits) as client, ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(detect, client, url, image, HOLD) for _ in range(n)]
        # Every request is inside the server: held in the model by the fault hook, or queued.
        poll(
            lambda: server.count("FAULT hold") + queued(url) == n,
            f"{n} requests in flight",
            lambda: (
                f"held {server.count('FAULT hold')}, queued {queued(url)}, answered "
                f"{[f.exception() or f.result().status_code for f in futures if f.done()]}; "
                f"server log tail: {server.log[-3000:]}"
            ),
        )
        mark = len(server.lines)
        server.proc.send_signal(signal.SIGTERM)
        poll(lambda: httpx.get(f"{url}/readyz").status_code == 503, "readiness to turn false")
        ready = httpx.get(f"{url}/readyz")
        assert ready.json()["error"]["code"] == "shutting_down"
        # New work is refused cleanly while the held requests are still running.
        late = detect(client, url, image, 0.35)
        assert late.status_code == 503 and late.json()["error"]["code"] == "shutting_down"
        assert late.headers["retry-after"] == "1" and late.headers["connection"] == "close"
        assert httpx.get(f"{url}/livez").status_code == 200
        assert not any(f.done() for f in futures)
        server.proc.send_signal(signal.SIGUSR1)  # let the model run the held batches
        responses = [f.result(WAIT_S) for f in futures]
    assert [r.status_code for r in responses] == [200] * n, [r.text for r in responses]
    for r in responses:
        assert "person" in {d["label"] for d in r.json()["detections"]}
        assert r.headers["connection"] == "close"  # clients reconnect elsewhere
    assert server.stop() == 0, server.log
    after = server.log.splitlines()[mark:]
    assert any("SIGTERM: draining" in s and f"{n} requests in flight" in s for s in after)
    assert any("drained: no request in flight" in s for s in after), server.log
    assert any("shutdown complete" in s for s in after), server.log
    assert "Traceback" not in server.log


@pytest.mark.slow
def test_sigterm_with_a_hanging_request_exits_within_the_grace_period(
    start_server: Callable[[dict[str, str]], ServerProcess],
) -> None:
    # The request's own deadline (60 s) is far past the grace period (12 s): only the shutdown
    # path can end it. The watchdog exits 1 at the grace period, so exit code 0 means the
    # orderly shutdown finished before it.
    server = start_server({"PRELABEL_SHUTDOWN_GRACE_S": "12", "PRELABEL_REQUEST_TIMEOUT_S": "60"})
    image = (SKIMAGE_DATA / "astronaut.png").read_bytes()
    with httpx.Client(timeout=WAIT_S) as client, ThreadPoolExecutor(1) as pool:
        hung = pool.submit(detect, client, server.url, image, HANG)
        server.wait_line(lambda s: s.startswith("FAULT hang"))
        server.proc.send_signal(signal.SIGTERM)
        response = hung.result(WAIT_S)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "shutting_down"
    assert server.stop() == 0, server.log
    assert "1 requests still in flight" in server.log
    assert "shutdown complete" in server.log and "grace period: exiting" not in server.log


@pytest.mark.slow
def test_the_watchdog_ends_a_shutdown_that_overruns_the_grace_period(
    start_server: Callable[[dict[str, str]], ServerProcess],
) -> None:
    # A 1 s grace period is shorter than uvicorn's own wait for a hung connection (1 s after
    # the listener closes), so the orderly path cannot finish in time: the watchdog must.
    server = start_server({"PRELABEL_SHUTDOWN_GRACE_S": "1", "PRELABEL_REQUEST_TIMEOUT_S": "60"})
    image = (SKIMAGE_DATA / "astronaut.png").read_bytes()
    with httpx.Client(timeout=WAIT_S) as client, ThreadPoolExecutor(1) as pool:
        hung = pool.submit(detect, client, server.url, image, HANG)
        server.wait_line(lambda s: s.startswith("FAULT hang"))
        server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(httpx.RemoteProtocolError):
            hung.result(WAIT_S)  # the process is gone mid-request: that is the point
    assert server.stop() == 1, server.log
    assert "shutdown exceeded the 1 s grace period: exiting now" in server.log
