"""Convert MoveNet MultiPose (TensorFlow.js graph model) to ONNX, with the NanoDet route
(`convert_nanodet_tfjs.py`: weights injected, TFJS fused convs split, tf2onnx opset 13).

Runs only inside the throwaway virtualenv that `scripts/convert_movenet.sh` builds. The input
keeps TF's signature: `input` [1, H, W, 3] int32 RGB 0..255 (H, W multiples of 32); the output
`output_0` [1, 6, 56] float32.

Usage: python convert_movenet_tfjs.py MODEL_JSON OUTPUT_ONNX [--opset 13]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tf2onnx

sys.path.insert(0, str(Path(__file__).parent))
from convert_nanodet_tfjs import load_graph_def, split_fused_ops


def convert(model_json: Path, output: Path, opset: int = 13) -> None:
    graph_def, model = load_graph_def(model_json)
    print(f"split {split_fused_ops(graph_def)} fused conv ops")
    sig = model["signature"]
    inputs = [v["name"] for v in sig["inputs"].values()]
    outputs = [v["name"] for v in sig["outputs"].values()]
    output.parent.mkdir(parents=True, exist_ok=True)
    tf2onnx.convert.from_graph_def(
        graph_def, input_names=inputs, output_names=outputs, opset=opset, output_path=str(output)
    )
    print(f"wrote {output} (inputs {inputs}, outputs {outputs})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_json", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--opset", type=int, default=13)
    args = parser.parse_args()
    convert(args.model_json, args.output, args.opset)


if __name__ == "__main__":
    main()
