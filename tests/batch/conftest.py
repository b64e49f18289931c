"""Real sample images (scikit-image's) copied into a temporary dataset folder."""

from __future__ import annotations

import shutil
from pathlib import Path

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
