#!/usr/bin/env bash
# Build the container image for real and run it (the test command's `== image` step).
#
#   bash scripts/check_image.sh          # the cpu target, then run it (scripts/check_image_run.py)
#   bash scripts/check_image.sh --gpu    # the gpu target: build it, list its ONNX Runtime providers
#
# No Docker engine and no registry here: buildah (vfs storage, chroot isolation) builds the
# Dockerfile in its offline mode (docs/deploying.md, "Build offline") on a Debian bookworm base
# made with debootstrap, with the wheels of scripts/wheelhouse.sh and the model files of
# `prelabel models fetch` in the context. Then scripts/check_image_run.py runs the image as its
# own user with its own entrypoint, command, environment and working directory, read from the
# image's config. Any failure exits non-zero.
#
# Caches (kept between runs; delete them to start cold): under $PRELABEL_IMAGE_CACHE (default
# ~/.cache/prelabel-image) the base rootfs tarball and buildah's storage holding the base and the
# last image built per target, keyed by its inputs (an unchanged checkout skips the build); the
# wheels in wheelhouse/ (gitignored). The working containers this script makes are removed, and
# so are the images of earlier keys.
set -euo pipefail
cd "$(dirname "$0")/.."

target=cpu
case "${1:-}" in
    "") ;;
    --gpu) target=gpu ;;
    *) echo "usage: $0 [--gpu]" >&2; exit 2 ;;
esac
extras="$target"
cache="${PRELABEL_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prelabel-image}"
store=(--root "$cache/storage" --runroot "$cache/runroot" --storage-driver vfs)
mkdir -p "$cache"
# One run at a time per cache: a second one waits (each removes the other's containers).
exec 9>"$cache/lock"
flock 9

t_all=$SECONDS
t_step=$SECONDS
timed() {
    echo "image step: $1 took $((SECONDS - t_step)) s"
    t_step=$SECONDS
}

# Tools: Debian's packages, installed only when missing (as root, like CI).
missing=()
for tool in buildah podman debootstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing ${missing[*]}: run as root or apt-get install -y podman buildah debootstrap" >&2
        exit 1
    fi
    apt-get install -y -qq podman buildah debootstrap >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq podman buildah debootstrap >/dev/null; }
fi
timed tools

# The base: Debian bookworm with python3 (3.11) and its venv module, as the Dockerfile's
# BASE_IMAGE asks. Keyed by the recipe and debootstrap's version; a point release of Debian
# does not change the key (delete the cache to refresh it).
recipe=(--variant=minbase --include=python3,python3-venv,ca-certificates bookworm)
config=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]')
key="$(printf '%s\n' "${recipe[*]}" "${config[*]}" "$(debootstrap --version)" | sha256sum | cut -c1-16)"
base="localhost/prelabel-base:bookworm-$key"
if ! buildah "${store[@]}" inspect --type image "$base" >/dev/null 2>&1; then
    tarball="$cache/base-$key.tar"
    if [ ! -f "$tarball" ]; then
        rootfs="$cache/rootfs.tmp"
        rm -rf "$rootfs"
        mkdir -p "$cache/debs"
        debootstrap --cache-dir="$cache/debs" "${recipe[@]}" "$rootfs" >"$cache/debootstrap.log" 2>&1 \
            || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
    fi
    podman "${store[@]}" import --quiet "${config[@]}" "$tarball" "$base" >/dev/null
fi
echo "base image: $base"
timed base

# The offline build's inputs: wheels for the target's extras, the model files in models/.
bash scripts/wheelhouse.sh "$extras"
.venv/bin/prelabel models fetch >/dev/null
timed wheelhouse+models

# The image, keyed by everything the build reads: the Dockerfile, .dockerignore, every COPY
# source (tests/deploy/test_dockerfile.py checks this list against the Dockerfile), the base
# image and the target. An unchanged key reuses the image built last time. No --layers: with vfs
# every cached step is a full copy of the filesystem (~40 GB for the cpu image).
inputs=(Dockerfile .dockerignore pyproject.toml README.md scripts/setup.sh models app
    "wheelhouse/$extras")
base_id="$(buildah "${store[@]}" inspect --type image --format '{{.FromImageID}}' "$base")"
key="$( {
    echo "$base_id $target $extras"
    find "${inputs[@]}" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z \
        | xargs -0 sha256sum
} | sha256sum | cut -c1-16)"
tag="localhost/prelabel:check-$target-$key"
if buildah "${store[@]}" inspect --type image "$tag" >/dev/null 2>&1; then
    echo "image $tag: inputs unchanged, built before"
else
    # Earlier builds of this target, and what an interrupted build left.
    buildah "${store[@]}" rm --all >/dev/null
    old="$(buildah "${store[@]}" images --format '{{.Name}}:{{.Tag}}' \
        | grep "^localhost/prelabel:check-$target-" || true)"
    if [ -n "$old" ]; then
        buildah "${store[@]}" rmi $old >/dev/null  # word splitting: one tag per word
    fi
    buildah "${store[@]}" rmi --prune >/dev/null 2>&1 || true
    # --format docker: OCI image configs have no HEALTHCHECK.
    buildah "${store[@]}" bud --isolation chroot --format docker --target "$target" \
        --build-arg BASE_IMAGE="$base" \
        --build-arg PRELABEL_SOURCE=offline \
        --build-arg PRELABEL_EXTRAS="$extras" \
        --tag "$tag" . >"$cache/build-$target.log" 2>&1 \
        || { tail -40 "$cache/build-$target.log" >&2; exit 1; }
fi
echo "image size: $(buildah "${store[@]}" images --format '{{.Size}}' "$tag") ($tag)"
timed build

if [ "$target" = gpu ]; then
    # No GPU needed: onnxruntime-gpu lists CUDA whenever its CUDA build is installed.
    ctr="$(buildah "${store[@]}" from --pull=never "$tag")"
    trap 'buildah "${store[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
    providers="$(buildah "${store[@]}" run --isolation chroot "$ctr" -- \
        python -c "import onnxruntime; print(onnxruntime.get_available_providers())")"
    echo "gpu image providers: $providers"
    grep -q CUDAExecutionProvider <<<"$providers"
    timed providers
    # Not kept as a cache: with vfs it holds ~7 GB, and the test command builds only the cpu one.
    buildah "${store[@]}" rm "$ctr" >/dev/null
    buildah "${store[@]}" rmi "$tag" >/dev/null
else
    .venv/bin/python scripts/check_image_run.py --image "$tag" --root "$cache/storage" \
        --runroot "$cache/runroot"
    timed run
fi
# Working containers left by interrupted runs; the base and the image stay (the cache).
buildah "${store[@]}" rm --all >/dev/null
echo "image check ($target): passed in $((SECONDS - t_all)) s; cache $(du -sh "$cache" | cut -f1)"
