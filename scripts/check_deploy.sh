#!/usr/bin/env bash
# Static security scan of the deployment files (the test command's `== deploy` step): hadolint
# and checkov on the Dockerfile, checkov on every rendering of k8s/ (both overlays, with and
# without the optional components, and the batch Jobs; tests/deploy/manifests.py lists them).
# Any finding fails; an accepted one carries an inline skip with its reason
# (tests/deploy/test_dockerfile.py checks that every skip has one). Negative controls run first,
# so a scanner that stopped finding anything fails this step too.
#
# Offline: checkov runs with --skip-download (no policy or guideline download). The scanners
# live in .venv-deploy (checkov pins many dependencies of its own); scripts/test.sh makes it.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${PRELABEL_DEPLOY_VENV:-.venv-deploy}"
if ! command -v kubectl >/dev/null; then
    echo "kubectl is not on PATH: the deploy checks render k8s/ with 'kubectl kustomize'" >&2
    exit 1
fi
for tool in checkov hadolint; do
    if [ ! -x "$venv/bin/$tool" ]; then
        echo "$venv/bin/$tool is missing: run scripts/test.sh, which installs it" >&2
        exit 1
    fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
checkov=("$venv/bin/checkov" --quiet --compact --skip-download --framework dockerfile kubernetes)

# Negative controls: a Dockerfile on an unpinned base running as root, and a privileged pod.
mkdir "$tmp/bad"
printf 'FROM python:latest\nRUN pip install flask\nCMD ["flask", "run"]\n' >"$tmp/bad/Dockerfile"
cat >"$tmp/bad/pod.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: bad
spec:
  containers:
    - name: bad
      image: bad:latest
      securityContext:
        privileged: true
EOF
if "$venv/bin/hadolint" "$tmp/bad/Dockerfile" >/dev/null; then
    echo "negative control: hadolint found nothing in a bad Dockerfile" >&2
    exit 1
fi
found="$("${checkov[@]}" -d "$tmp/bad" || true)"
for check in CKV_DOCKER_7 CKV_DOCKER_3 CKV_K8S_16 CKV_K8S_20; do
    if ! grep -q "Check: $check:" <<<"$found"; then
        echo "negative control: checkov did not report $check" >&2
        exit 1
    fi
done

# The real files.
"$venv/bin/hadolint" Dockerfile
mkdir "$tmp/scan"
cp Dockerfile "$tmp/scan/Dockerfile"
.venv/bin/python -m tests.deploy.manifests "$tmp/scan/k8s"
"${checkov[@]}" -d "$tmp/scan"
echo "deploy scan: hadolint $("$venv/bin/hadolint" --version | grep -o '[0-9][0-9.]*' | head -1)," \
    "checkov $("$venv/bin/checkov" --version): no findings"
