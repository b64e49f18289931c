"""Real sample images (scikit-image's) copied into a temporary dataset folder."""

from __future__ import annotations

import http.server
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

SKIMAGE_DATA = Path(__import__("skimage").__file__).parent / "data"
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


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    """`/img/<name>`: a scikit-image sample; `/data/local-files/?d=<name>`: the same, as Label
    Studio serves it, only with `Authorization: Token secret`."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/img/"):
            name = url.path.removeprefix("/img/")
        elif url.path == "/data/local-files/":
            if self.headers.get("Authorization") != "Token secret":
                self.send_error(401)
                return
            name = urllib.parse.parse_qs(url.query).get("d", [""])[0]
        else:
            self.send_error(404)
            return
        path = SKIMAGE_DATA / name
        if "/" in name or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "image/png" if name.endswith(".png") else "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def image_server() -> Iterator[str]:
    """Base URL of a local image server on 127.0.0.1 (never off the machine)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# Lets the URL policy reach the local image server (loopback is refused by default).
LOCAL_URLS = {"PRELABEL_URL_ALLOW_HTTP": "true", "PRELABEL_URL_ALLOWED_NETWORKS": "127.0.0.1/32"}
