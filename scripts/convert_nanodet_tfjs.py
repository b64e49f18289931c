"""Convert a TensorFlow.js graph model (model.json + weight shards) to ONNX, batch fixed at 1.

Runs only inside the throwaway virtualenv that `scripts/convert_nanodet.sh` builds
(tensorflow-cpu 2.21, tf2onnx 1.17, onnx); it is not a dependency of the service.

Route (see shared MODELS.md, "NanoDet-g: facts for conversion and decoding"):

1. `modelTopology` in model.json is a TF GraphDef in protobuf-JSON form: parse it back.
2. The Const nodes carry no values; `weightsManifest` says where each one's bytes lie in
   the concatenated `.bin` shards. TFJS stores int64 as int32 and may store float32 as
   float16 (or affine-quantized uint8/uint16): decode, then cast to the dtype the graph
   declares (int32 -> int64 for shape constants).
3. TFJS's converter fuses ops that stock TensorFlow/tf2onnx do not all handle
   (`FusedDepthwiseConv2dNative` is a TFJS-only name): split `_FusedConv2D` /
   `FusedDepthwiseConv2dNative` back into conv + BiasAdd (+ activation).
4. `tf2onnx.convert.from_graph_def(..., opset=13)`.

For human-models 3.0.4's nanodet.json: 229 weights, 69 float32 tensors stored as float16, 26 int32
constants declared int64, and no fused convs (the split reports 0; it was checked on small
synthetic graphs against TensorFlow's own fused kernels).

Usage: python convert_nanodet_tfjs.py MODEL_JSON OUTPUT_ONNX [--opset 13]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf2onnx
from google.protobuf import json_format

# TFJS manifest dtype -> numpy dtype of the stored bytes.
_STORED_DTYPES: dict[str, type[np.generic]] = {
    "float32": np.float32,
    "float16": np.float16,
    "int32": np.int32,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "bool": np.bool_,
}

_CONV_FOR_FUSED = {
    "_FusedConv2D": "Conv2D",
    "FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
    "_FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
}
# Attributes the plain conv op accepts; the fused op's others (fused_ops, num_args, TArgs,
# epsilon, leakyrelu_alpha, ...) are dropped.
_CONV_ATTRS = {
    "Conv2D": (
        "T",
        "strides",
        "padding",
        "explicit_paddings",
        "data_format",
        "dilations",
        "use_cudnn_on_gpu",
    ),
    "DepthwiseConv2dNative": (
        "T",
        "strides",
        "padding",
        "explicit_paddings",
        "data_format",
        "dilations",
    ),
}
_INLINE_VALUE_FIELDS = ("float_val", "int_val", "int64_val", "bool_val", "half_val", "double_val")
_SIMPLE_ACTIVATIONS = {"Relu", "Relu6", "Elu", "Sigmoid", "Tanh", "Selu"}


def load_graph_def(model_json: Path) -> tuple[tf.compat.v1.GraphDef, dict[str, Any]]:
    """Parse model.json into (GraphDef with weights injected, the model.json dict)."""
    model = json.loads(model_json.read_text())
    if model.get("format") != "graph-model":
        raise ValueError(f"{model_json}: not a TFJS graph model (format={model.get('format')!r})")
    graph_def = json_format.ParseDict(model["modelTopology"], tf.compat.v1.GraphDef())
    inject_weights(graph_def, model["weightsManifest"], model_json.parent)
    return graph_def, model


def _decode_weight(spec: dict[str, Any], buffer: memoryview, offset: int) -> tuple[np.ndarray, int]:
    """Decode one manifest entry at `offset`; return (array in its TFJS dtype, next offset)."""
    shape = [int(d) for d in spec["shape"]]
    count = math.prod(shape)
    quant = spec.get("quantization")
    stored = quant["dtype"] if quant else spec["dtype"]
    if stored not in _STORED_DTYPES:
        raise ValueError(f"weight {spec['name']}: unsupported stored dtype {stored!r}")
    np_stored = np.dtype(_STORED_DTYPES[stored])
    nbytes = count * np_stored.itemsize
    raw = np.frombuffer(buffer[offset : offset + nbytes], dtype=np_stored).reshape(shape)
    if quant is None:
        values = raw
    elif stored == "float16":
        values = raw.astype(np.float32)
    else:  # affine uint8/uint16: value = q * scale + min
        values = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
    if spec["dtype"] == "int32" and values.dtype != np.int32:
        values = np.round(values).astype(np.int32)
    return values, offset + nbytes


def inject_weights(
    graph_def: tf.compat.v1.GraphDef, manifest: list[dict[str, Any]], base_dir: Path
) -> None:
    """Fill the Const nodes named in `manifest` with values read from the weight shards.

    Values are cast to the dtype the node declares (TFJS keeps int64 as int32).
    """
    consts = {node.name: node for node in graph_def.node if node.op == "Const"}
    filled = 0
    for group in manifest:
        buffer = memoryview(b"".join((base_dir / p).read_bytes() for p in group["paths"]))
        offset = 0
        for spec in group["weights"]:
            values, offset = _decode_weight(spec, buffer, offset)
            node = consts.get(spec["name"])
            if node is None:
                raise ValueError(f"weight {spec['name']} has no Const node in the graph")
            declared = tf.dtypes.as_dtype(node.attr["dtype"].type)
            values = values.astype(declared.as_numpy_dtype)
            node.attr["value"].tensor.CopyFrom(
                tf.make_tensor_proto(values, dtype=declared, shape=values.shape)
            )
            filled += 1
        if offset != len(buffer):
            raise ValueError(f"weights of {group['paths']} use {offset} of {len(buffer)} bytes")
    injected = {w["name"] for group in manifest for w in group["weights"]}
    missing = [
        name
        for name, node in consts.items()
        if name not in injected and not _has_value(node.attr["value"].tensor)
    ]
    if missing:
        raise ValueError(f"Const nodes without values: {missing[:5]}")
    print(f"injected {filled} weights")


def _has_value(tensor: Any) -> bool:
    """Whether a TensorProto carries values (small constants may be inline in the JSON)."""
    if tensor.tensor_content or math.prod(d.size for d in tensor.tensor_shape.dim) == 0:
        return True
    return any(len(getattr(tensor, field)) for field in _INLINE_VALUE_FIELDS)


def split_fused_ops(graph_def: tf.compat.v1.GraphDef) -> int:
    """Rewrite fused conv ops into conv + BiasAdd (+ activation), in place.

    The last node of each replacement keeps the fused node's name, so its consumers are
    untouched. Returns how many fused nodes were split.
    """
    new_nodes: list[Any] = []
    count = 0
    for node in graph_def.node:
        if node.op not in _CONV_FOR_FUSED:
            new_nodes.append(node)
            continue
        new_nodes.extend(_split_one(node))
        count += 1
    del graph_def.node[:]
    graph_def.node.extend(new_nodes)
    return count


def _split_one(node: Any) -> list[Any]:
    """Return the plain nodes that compute fused `node`; the last one is named `node.name`."""
    fused_ops = [op.decode() for op in node.attr["fused_ops"].list.s]
    data_inputs = [i for i in node.input if not i.startswith("^")]
    control = [i for i in node.input if i.startswith("^")]
    x, weights, args = data_inputs[0], data_inputs[1], data_inputs[2:]
    if not fused_ops or fused_ops[0] != "BiasAdd":
        raise ValueError(f"{node.name}: unsupported fused_ops {fused_ops}")
    activation = fused_ops[1:]
    if len(activation) > 1 or (
        activation and activation[0] not in _SIMPLE_ACTIVATIONS | {"LeakyRelu", "Prelu"}
    ):
        raise ValueError(f"{node.name}: unsupported fused_ops {fused_ops}")

    conv_op = _CONV_FOR_FUSED[node.op]
    dtype = node.attr["T"]
    data_format = node.attr.get("data_format")
    conv = tf.compat.v1.NodeDef(
        name=f"{node.name}/split_conv", op=conv_op, input=[x, weights, *control], device=node.device
    )
    for key in _CONV_ATTRS[conv_op]:
        if key in node.attr:
            conv.attr[key].CopyFrom(node.attr[key])
    bias_name = f"{node.name}/split_bias" if activation else node.name
    bias = tf.compat.v1.NodeDef(
        name=bias_name, op="BiasAdd", input=[conv.name, args[0]], device=node.device
    )
    bias.attr["T"].CopyFrom(dtype)
    if data_format is not None:
        bias.attr["data_format"].CopyFrom(data_format)
    out: list[Any] = [conv, bias]
    if not activation:
        return out

    act_op = activation[0]
    if act_op == "Prelu":
        # TF has no Prelu op: max(x, 0) + alpha * min(x, 0), alpha broadcast per channel.
        out.extend(_prelu_nodes(node.name, bias.name, args[1], dtype, node.device))
        return out
    act = tf.compat.v1.NodeDef(name=node.name, op=act_op, input=[bias.name], device=node.device)
    act.attr["T"].CopyFrom(dtype)
    if act_op == "LeakyRelu":
        act.attr["alpha"].f = node.attr["leakyrelu_alpha"].f
    out.append(act)
    return out


def _prelu_nodes(name: str, x: str, alpha: str, dtype: Any, device: str) -> list[Any]:
    """Nodes computing PReLU of `x`; the last one is named `name`."""
    zero = tf.compat.v1.NodeDef(name=f"{name}/prelu_zero", op="Const", device=device)
    zero.attr["dtype"].type = dtype.type
    zero.attr["value"].tensor.CopyFrom(
        tf.make_tensor_proto(0, dtype=tf.dtypes.as_dtype(dtype.type))
    )
    nodes = [zero]
    for op, suffix, inputs in (
        ("Maximum", "pos", [x, zero.name]),
        ("Minimum", "neg", [x, zero.name]),
        ("Mul", "scaled", [alpha, f"{name}/prelu_neg"]),
        ("AddV2", None, [f"{name}/prelu_pos", f"{name}/prelu_scaled"]),
    ):
        n = tf.compat.v1.NodeDef(
            name=f"{name}/prelu_{suffix}" if suffix else name, op=op, input=inputs, device=device
        )
        n.attr["T"].CopyFrom(dtype)
        nodes.append(n)
    return nodes


def signature_names(model: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Input and output tensor names ("name:0") from the model.json signature, in order."""
    signature = model["signature"]
    return list(signature["inputs"]), list(signature["outputs"])


def convert(model_json: Path, output: Path, opset: int = 13) -> None:
    """Convert the TFJS graph model at `model_json` to an ONNX file at `output`."""
    graph_def, model = load_graph_def(model_json)
    print(f"split {split_fused_ops(graph_def)} fused conv ops")
    inputs, outputs = signature_names(model)
    output.parent.mkdir(parents=True, exist_ok=True)
    tf2onnx.convert.from_graph_def(
        graph_def, input_names=inputs, output_names=outputs, opset=opset, output_path=str(output)
    )
    print(f"wrote {output} (inputs {inputs}, outputs {outputs})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_json", type=Path, help="TFJS model.json (weight shards beside it)")
    parser.add_argument("output", type=Path, help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=13)
    args = parser.parse_args(argv)
    convert(args.model_json, args.output, args.opset)


if __name__ == "__main__":
    main()
