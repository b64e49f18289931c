"""Real sample images (scikit-image's) copied into a temporary dataset folder."""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage

from tests.local_http import Handler, LocalServer, Route, send

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
SAMPLES = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")


def make_dataset(root: Path, copies: int = 1, bad: bool = False) -> list[str]:
    """`copies` x the sample images under root (half in a subfolder), plus, with `bad`, a
    truncated PNG and a text file named .jpg. Returns the good items' keys."""
    keys = []
    for c in range(copies):
        for i, name in enumerate(SAMPLES):
            rel = Path("sub" if i % 2 else ".") / f"{c:02d}_{name}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SKIMAGE_DATA / name, root / rel)
            keys.append(rel.as_posix())
    if bad:
        (root / "corrupt.png").write_bytes((SKIMAGE_DATA / "astronaut.png").read_bytes()[:3000])
        (root / "notes.jpg").write_text("not an image\n")
    return sorted(keys)


def _image(name: str) -> Route:
    ctype = "image/png" if name.endswith(".png") else "image/jpeg"
    return lambda h: send(h, 200, (SKIMAGE_DATA / name).read_bytes(), ctype)


def _label_studio_file(h: Handler) -> None:
    """`/data/local-files/?d=<name>`, as Label Studio serves it: only with its token."""
    if h.headers.get("Authorization") != "Token secret":
        send(h, 401, b"unauthorized", "text/plain")
        return
    name = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query).get("d", [""])[0]
    if name not in SAMPLES:
        send(h, 404, b"not found", "text/plain")
        return
    _image(name)(h)


@pytest.fixture(scope="session")
def image_server() -> Iterator[str]:
    """Base URL of a local server on 127.0.0.1 (never off the machine): `/img/<sample>` and
    Label Studio's `/data/local-files/?d=<sample>` (token "secret")."""
    routes: dict[str, Route] = {f"/img/{name}": _image(name) for name in SAMPLES}
    routes["/data/local-files/"] = _label_studio_file
    with LocalServer(routes) as server:
        yield server.url("").rstrip("/")


# Lets the URL policy reach the local image server (loopback is refused by default).
LOCAL_URLS = {"PRELABEL_URL_ALLOW_HTTP": "true", "PRELABEL_URL_ALLOWED_NETWORKS": "127.0.0.1/32"}
