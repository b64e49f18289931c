"""Real servers on loopback for the Label Studio tests: Label Studio 1.23.2, a moto S3 server and
Prelabel itself, each a child process with its own log file, stopped by its PID.

Label Studio's environment (read in its settings, label_studio/core/settings/base.py):
- `LABEL_STUDIO_HOST` is left unset, as in a default install: Label Studio then gives ML
  backends `http://localhost:<port>` as `hostname` in /setup (ml/api_connector.py) and stores
  Local Files task data as a relative `/data/local-files/?d=...` (with it set, as
  `<host>/data/local-files/?d=...`, io_storages/localfiles/models.py);
- `LABEL_STUDIO_ML_BLOCK_LOCAL_IP=false`, `LABEL_STUDIO_SSRF_PROTECTION_ENABLED=false`: an ML
  backend and S3 endpoint on loopback;
- `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and `..._DOCUMENT_ROOT`: Local Files storages;
- `LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true`: the `--user-token` works as `Authorization: Token`
  (the token /setup hands to the backend is always this legacy token, ml/api_connector.py);
- `LABEL_STUDIO_LATEST_VERSION_CHECK=false`, `LABEL_STUDIO_COLLECT_ANALYTICS=false`: no request
  leaves the machine (it asks the package index for its latest version at start-up otherwise).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

LS_USER = "prelabel-tests@example.com"
LS_PASSWORD = "Prelabel-tests-1"
LS_TOKEN = "0123456789abcdef0123456789abcdef01234567"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """One child process; stdout and stderr go to `log`."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path
    ) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_http(self, url: str, seconds: float) -> None:
        """Until GET `url` answers 200; fails with the log's tail if the process exits."""
        deadline = time.monotonic() + seconds
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not up in {seconds:.0f} s:\n{self.tail()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_label_studio(exe: str, port: int, work: Path) -> Service:
    """`label-studio start` on 127.0.0.1:`port` with a fresh data dir and a legacy-token user;
    Local Files served from `work / "files"`."""
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(work / "ls-base"),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false",
        "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(work / "files"),
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
    }
    argv = [
        exe,
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(work / "ls-data"),
        "--username",
        LS_USER,
        "--password",
        LS_PASSWORD,
        "--user-token",
        LS_TOKEN,
    ]
    return Service("label-studio", argv, env, work / "label-studio.log", work)


def start_moto(exe: str, port: int, work: Path) -> Service:
    """moto's S3-compatible server (`moto_server`) on 127.0.0.1:`port`."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    argv = [exe, "-H", "127.0.0.1", "-p", str(port)]
    return Service("moto", argv, env, work / "moto.log", work)


def start_prelabel(
    python: str, root: Path, port: int, work: Path, name: str, env: Mapping[str, str]
) -> Service:
    """`prelabel serve` on 127.0.0.1:`port` with `env` over the test process's environment."""
    argv = [python, "-m", "app.cli.main", "serve", "--port", str(port)]
    full = {**os.environ, "PRELABEL_LOG_LEVEL": "info", **env}
    return Service(name, argv, full, work / f"{name}.log", root)
