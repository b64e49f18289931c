#!/usr/bin/env bash
# Fill wheelhouse/EXTRAS/ with a wheel for every pinned requirement of the project and of the
# extras (their dependencies included), plus the build backend pyproject.toml names
# (setuptools, wheel) that `pip install -e .` needs: what an offline image build installs from
# (Dockerfile, PRELABEL_SOURCE=offline; docs/deploying.md, "Build offline").
#
#   bash scripts/wheelhouse.sh          # wheelhouse/cpu
#   bash scripts/wheelhouse.sh gpu      # wheelhouse/gpu (onnxruntime-gpu with its CUDA wheels)
#
# Run it with the image's Python (CPython 3.11 on x86_64 Linux, glibc >= 2.36: this machine's
# Debian 12 python3, or PYTHON=...): pip picks the wheels for the interpreter it runs in.
# The folder's .requirements file records what it was made for; the same list again does
# nothing, a different one empties the folder first.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-cpu}"
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then
    PYTHON=.venv/bin/python
fi
python="${PYTHON:-python3}"
dest="wheelhouse/$extras"

reqs="$("$python" - "$extras" <<'PY'
import sys
import tomllib

with open("pyproject.toml", "rb") as f:
    pyproject = tomllib.load(f)
project = pyproject["project"]
extras = [e for e in sys.argv[1].split(",") if e]
lines = project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
print("\n".join(lines + pyproject["build-system"]["requires"]))
PY
)"
stamp="$("$python" -c 'import platform, sys; print(sys.implementation.cache_tag, platform.machine())')"
want="$(printf '# %s\n%s\n' "$stamp" "$reqs")"
if [ -f "$dest/.requirements" ] && [ "$(cat "$dest/.requirements")" = "$want" ]; then
    echo "wheelhouse $dest: up to date ($(find "$dest" -name '*.whl' | wc -l) wheels)"
    exit 0
fi
rm -rf "$dest"
mkdir -p "$dest"
printf '%s\n' "$reqs" >"$dest/requirements.txt"
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$dest" \
    -r "$dest/requirements.txt"
printf '%s\n' "$want" >"$dest/.requirements"
echo "wheelhouse $dest: $(find "$dest" -name '*.whl' | wc -l) wheels, $(du -sh "$dest" | cut -f1)"
