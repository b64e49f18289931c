#!/usr/bin/env bash
# Set up Prelabel from scratch: a virtualenv in .venv, the pinned dependencies, the model files.
#
#   bash scripts/setup.sh                # CPU ONNX Runtime (the default)
#   PRELABEL_EXTRAS=gpu bash scripts/setup.sh      # onnxruntime-gpu with its CUDA/cuDNN wheels
#   PRELABEL_EXTRAS=cpu,dev,export bash scripts/setup.sh   # what the test command installs
#
# Idempotent: rerunning it installs nothing new and re-verifies the model files' sha256.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${PRELABEL_EXTRAS:-cpu}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# Exactly one ONNX Runtime wheel: both install the `onnxruntime` module and overwrite each other.
case ",$extras," in
    *,gpu,*) other=onnxruntime ;;
    *) other=onnxruntime-gpu ;;
esac
if .venv/bin/python -m pip show --quiet "$other" >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall --yes --quiet onnxruntime onnxruntime-gpu
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${extras}]"
.venv/bin/prelabel models fetch
# Opt-in models the tests load (not in the default PRELABEL_MODELS).
.venv/bin/prelabel models fetch ppocr-v4
