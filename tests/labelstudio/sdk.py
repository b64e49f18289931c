"""Label Studio's own SDK (label-studio-sdk, in Label Studio's venv: it pins OpenCV 4 and Prelabel
uses OpenCV 5) decoding the brush RLE that Label Studio stored, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

DECODE = r"""
import json, sys
from importlib.metadata import version
from pathlib import Path
import numpy as np
from label_studio_sdk.converter import brush

work = Path(sys.argv[1])
items = json.loads((work / "rles.json").read_text())
masks = {}
for i, item in enumerate(items):
    rgba = brush.decode_rle(item["rle"]).reshape(item["height"], item["width"], 4)
    masks[f"m{i}"] = rgba[..., 3] > 127
np.savez(work / "masks.npz", **masks)
print(version("label-studio-sdk"))
"""


def decode_brushes(python: str, results: list[dict[str, Any]]) -> list[np.ndarray]:
    """Each `brushlabels` result's mask as the SDK's `converter.brush.decode_rle` reads it:
    (original_height, original_width) bool, True where the alpha channel is set."""
    items = [
        {
            "rle": r["value"]["rle"],
            "height": r["original_height"],
            "width": r["original_width"],
        }
        for r in results
    ]
    with tempfile.TemporaryDirectory(prefix="prelabel-sdk-") as tmp:
        work = Path(tmp)
        (work / "rles.json").write_text(json.dumps(items))
        done = subprocess.run(
            [python, "-c", DECODE, str(work)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip() == "2.1.2", f"label-studio-sdk {done.stdout.strip()}"
        with np.load(work / "masks.npz") as npz:
            return [npz[f"m{i}"] for i in range(len(items))]
