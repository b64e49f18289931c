"""Free the batch dimension of the converted NanoDet-g ONNX model.

tf2onnx bakes batch 1 into three places: the graph input `[1, 3, 416, 416]`, the six
outputs `[1, g*g, C]`, and six `Reshape` nodes whose constant target shape is
`[1, C, -1]` (C = 80 class scores or 44 = 4 x 11 box bins). Renaming dim 0 of the inputs
and outputs alone (what `onnx.tools.update_model_dims` does) leaves those Reshapes, and
any batch > 1 then fails at run time. Here each Reshape target becomes `[0, C, -1]`
(0 = copy the input's dim 0), stale `value_info` is dropped and shapes are inferred anew.

Needs only `onnx` and numpy.

Usage: python nanodet_dynamic_batch.py INPUT_ONNX OUTPUT_ONNX [--batch-name batch]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

# Channel counts of the per-level head outputs: 80 COCO class scores, 4 sides x 11 bins.
HEAD_CHANNELS = (80, 44)
EXPECTED_RESHAPES = 6


def make_batch_dynamic(model: onnx.ModelProto, batch_name: str = "batch") -> onnx.ModelProto:
    """Return a copy of `model` whose batch dimension is the symbol `batch_name`.

    Raises ValueError if the graph does not have the six `[1, C, -1]` Reshapes expected
    of NanoDet-g, so a different model is never half-rewritten.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph

    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if not dims:
            raise ValueError(f"{value.name} has no shape")
        dims[0].Clear()
        dims[0].dim_param = batch_name

    initializers = {init.name: init for init in graph.initializer}
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        target = initializers.get(node.input[1])
        if target is None:
            continue
        shape = numpy_helper.to_array(target)
        if shape.shape != (3,) or shape[0] != 1 or shape[2] != -1 or shape[1] not in HEAD_CHANNELS:
            continue
        # Targets are shared between Reshapes: give each rewritten one its own initializer.
        new_name = f"{target.name}__dynbatch_{node.name.replace('/', '_')}"
        new_shape = np.array([0, shape[1], -1], dtype=shape.dtype)
        graph.initializer.append(numpy_helper.from_array(new_shape, name=new_name))
        node.input[1] = new_name
        rewritten += 1
    if rewritten != EXPECTED_RESHAPES:
        raise ValueError(
            f"expected {EXPECTED_RESHAPES} Reshapes with target [1, C, -1], "
            f"found {rewritten}: not the NanoDet-g graph this script knows"
        )

    _drop_unused_initializers(graph)
    graph.ClearField("value_info")
    inferred = onnx.shape_inference.infer_shapes(out, check_type=True, strict_mode=True)
    onnx.checker.check_model(inferred)
    return inferred


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Remove initializers no node reads (the old `[1, C, -1]` targets)."""
    used = {name for node in graph.node for name in node.input}
    used.update(value.name for value in graph.output)
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def convert_file(src: Path, dst: Path, batch_name: str = "batch") -> None:
    """Read the batch-1 model at `src`, write the dynamic-batch model to `dst`."""
    model = make_batch_dynamic(onnx.load(str(src)), batch_name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Free the batch dim of NanoDet-g ONNX.")
    parser.add_argument("src", type=Path, help="batch-1 ONNX from convert_nanodet_tfjs.py")
    parser.add_argument("dst", type=Path, help="where to write the dynamic-batch ONNX")
    parser.add_argument("--batch-name", default="batch", help="symbolic name of dim 0")
    args = parser.parse_args(argv)
    convert_file(args.src, args.dst, args.batch_name)
    print(f"wrote {args.dst}")


if __name__ == "__main__":
    main()
