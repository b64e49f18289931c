"""MoveNet conversion check (scripts/convert_movenet.sh).

`--prepare DIR`: write real photos as the model's input, `<name>_<H>x<W>.rgb` (uint8 HWC RGB,
the longer side scaled to 256 and both sides rounded to multiples of 32).
`MODEL_ONNX`: run each `ref/*.rgb` through the ONNX file and compare with the TF.js output
`ref/*.rgb.out.json` (scripts/movenet_tfjs_reference.js); exits 1 past 1e-4.
"""

import json
import re
import sys
from pathlib import Path

import numpy as np

DARKNET = Path("/usr/share/darknet/data")


def prepare(out: Path) -> None:
    import skimage
    from PIL import Image

    images = {"astronaut": Path(skimage.__file__).parent / "data" / "astronaut.png"}
    images.update({n: DARKNET / f"{n}.jpg" for n in ("person", "kite", "horses")})
    for name, path in images.items():
        if not path.exists():
            continue
        img = Image.open(path).convert("RGB")
        w, h = img.size
        s = 256 / max(h, w)
        nh, nw = max(32, round(h * s / 32) * 32), max(32, round(w * s / 32) * 32)
        r = np.asarray(img.resize((nw, nh), Image.Resampling.BILINEAR), np.uint8)
        (out / f"{name}_{nh}x{nw}.rgb").write_bytes(r.tobytes())
    noise = np.random.default_rng(0).integers(0, 256, (160, 256, 3), dtype=np.uint8)
    (out / "noise_160x256.rgb").write_bytes(noise.tobytes())


def compare(model: str) -> None:
    import onnxruntime as ort

    s = ort.InferenceSession(model)
    worst = 0.0
    for raw in sorted(Path("ref").glob("*.rgb")):
        size = re.search(r"(\d+)x(\d+)", raw.name)
        assert size, raw.name  # written by --prepare as <name>_<h>x<w>.rgb
        h, w = map(int, size.groups())
        x = np.frombuffer(raw.read_bytes(), np.uint8).reshape(1, h, w, 3).astype(np.int32)
        y = s.run(None, {s.get_inputs()[0].name: x})[0]
        ref = json.loads(Path(f"{raw}.out.json").read_text())
        r = np.array(ref["data"], np.float32).reshape(ref["shape"])
        d = float(np.abs(y - r).max())
        worst = max(worst, d)
        print(f"{raw.name}: max |onnx - tfjs| = {d:.2e}; person scores {np.round(r[0, :, 55], 3)}")
    print(f"worst {worst:.2e}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    if sys.argv[1] == "--prepare":
        prepare(Path(sys.argv[2]))
    else:
        compare(sys.argv[1])
