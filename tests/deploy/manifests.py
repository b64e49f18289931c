"""Render the kustomizations under k8s/ with `kubectl kustomize` (the tests' and the security
scan's one definition of what gets rendered).

`python -m tests.deploy.manifests OUT_DIR` writes one YAML file per rendering into OUT_DIR
(scripts/check_deploy.sh scans them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"

COMPONENTS = ("queue-depth-hpa", "prometheus-operator", "nginx-gateway-fabric", "envoy-sticky-sam")

# name -> (kustomization directory under k8s/, components added on top)
RENDERINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cpu": ("overlays/cpu", ()),
    "gpu": ("overlays/gpu", ()),
    "single": ("overlays/single", ()),
    "cpu-all-components": ("overlays/cpu", COMPONENTS),
    "gpu-all-components": ("overlays/gpu", COMPONENTS),
    "batch-annotate": ("batch/annotate", ()),
    "batch-merge": ("batch/merge", ()),
}

Obj = dict[str, Any]


def kubectl() -> str:
    """The kubectl binary; the deploy checks need it (kustomize is built into kubectl)."""
    path = shutil.which("kubectl")
    if path is None:
        raise RuntimeError(
            "kubectl is not on PATH: the deploy checks render k8s/ with `kubectl kustomize` "
            "(install kubectl, which bundles kustomize)"
        )
    return path


def kustomize(directory: Path) -> str:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {proc.stderr.strip()}")
    return proc.stdout


def render_text(name: str) -> str:
    """The YAML stream of one rendering (components composed in a throwaway kustomization:
    kustomize takes only relative paths to them)."""
    base, components = RENDERINGS[name]
    if not components:
        return kustomize(K8S / base)
    with tempfile.TemporaryDirectory(prefix="prelabel-kustomize-") as tmp:

        def rel(path: str) -> str:
            return os.path.relpath(K8S / path, tmp)

        doc = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [rel(base)],
            "components": [rel(f"components/{c}") for c in components],
        }
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        return kustomize(Path(tmp))


@cache
def rendered(name: str) -> tuple[Obj, ...]:
    return tuple(d for d in yaml.safe_load_all(render_text(name)) if d)


def find(objs: tuple[Obj, ...], kind: str, name: str | None = None) -> Obj:
    """The one object of `kind` (and name prefix, for generated ConfigMaps) in a rendering."""
    hits = [
        o
        for o in objs
        if o["kind"] == kind and (name is None or o["metadata"]["name"].startswith(name))
    ]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, got {len(hits)}"
    return hits[0]


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def container(obj: Obj, name: str = "prelabel") -> Obj:
    (c,) = [c for c in pod_spec(obj)["containers"] if c["name"] == name]
    found: Obj = c
    return found


# The renderings of the interactive service; the replicated ones share PostgreSQL, "single"
# keeps its state in SQLite on a claim.
REPLICATED = ("cpu", "gpu", "cpu-all-components", "gpu-all-components")
SERVICE = (*REPLICATED, "single")


def settings_of(objs: tuple[Obj, ...], configmap: str) -> dict[str, str]:
    """The data of a rendered (name-hashed) ConfigMap."""
    data: dict[str, str] = find(objs, "ConfigMap", configmap)["data"]
    return data


def load_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """Settings from exactly `env`, as a container whose environment it is."""
    for key in [k for k in os.environ if k.startswith("PRELABEL_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in RENDERINGS:
        (out / f"{name}.yaml").write_text(render_text(name), encoding="utf-8")
    print(f"rendered {len(RENDERINGS)} kustomizations into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
