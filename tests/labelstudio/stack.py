"""The running stack the Label Studio tests share: its services, URLs and helpers (started by
the session fixture in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import SKIMAGE_DATA
from tests.labelstudio.lsapi import LabelStudio
from tests.labelstudio.servers import Service

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("astronaut.png", "chelsea.png")
BUCKET = "prelabel-images"


@dataclass
class Stack:
    """URLs of the running services, Label Studio's client, and what the tests need to check."""

    ls: LabelStudio
    prelabel: str
    keyed: str
    key: str
    moto: str
    work: Path
    sdk_python: str
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def ls_hostname(self) -> str:
        """Label Studio's URL as it names itself to a backend in /setup (no LABEL_STUDIO_HOST):
        `http://localhost:<port>`; Prelabel's PRELABEL_LABEL_STUDIO_URL."""
        return self.ls.url.replace("127.0.0.1", "localhost")

    @property
    def events(self) -> Path:
        """Where the keyed Prelabel appends the webhook events it accepted (JSON lines)."""
        return self.work / "events.jsonl"

    def image(self, name: str) -> bytes:
        return (SKIMAGE_DATA / name).read_bytes()

    def logs(self, chars: int = 3000) -> str:
        """The tail of every service's log, for failure messages."""
        return "\n".join(f"--- {n} ---\n{s.tail(chars)}" for n, s in self.services.items())


def new_key(name: str) -> tuple[str, str]:
    """(key, its line for PRELABEL_API_KEYS) from `prelabel keys new`, as a user makes one."""
    done = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "keys", "new", "--role", "user", "--name", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    key, line = [s for s in done.stdout.splitlines() if s.strip()][:2]
    return key.strip(), line.strip()


def fill_bucket(moto: str) -> None:
    """Create the bucket and put the images under `photos/` with plain S3 REST calls (moto
    checks no signature)."""
    r = httpx.put(f"{moto}/{BUCKET}")
    assert r.status_code == 200, r.text
    for name in IMAGES:
        r = httpx.put(
            f"{moto}/{BUCKET}/photos/{name}",
            content=(SKIMAGE_DATA / name).read_bytes(),
            headers={"Content-Type": "image/png"},
        )
        assert r.status_code == 200, r.text
