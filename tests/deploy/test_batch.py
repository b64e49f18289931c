"""The batch Jobs, run here as Kubernetes would run them: the rendered Indexed Job's command and
settings once per completion index (JOB_COMPLETION_INDEX and the SHARD variable set, `$(SHARD)`
expanded, the volumes mapped to folders), on real photographs with the real detector, then the
merge Job's shell command over the shard folders. Every image lands in exactly one shard and
once in the merged COCO file; a missing shard fails the merge instead of shrinking it."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SKIMAGE_DATA
from tests.deploy.manifests import ROOT, Obj, container, find, pod_spec, rendered

PRELABEL = ROOT / ".venv/bin/prelabel"
IMAGES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "camera.png",
    "page.png",
)


def job(name: str) -> Obj:
    return find(rendered(name), "Job")


def batch_env(name: str) -> dict[str, str]:
    data: dict[str, str] = find(rendered(name), "ConfigMap", "prelabel-batch")["data"]
    return data


def mounts(obj: Obj, folders: dict[str, Path]) -> dict[str, Path]:
    """Each volumeMount path -> the local folder standing in for its volume."""
    c = container(obj)
    return {m["mountPath"]: folders[m["name"]] for m in c["volumeMounts"]}


def localize(text: str, paths: dict[str, Path]) -> str:
    for mount, folder in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(rf"(?<![\w/]){re.escape(mount)}(?=/|$|\s)", str(folder), text)
    return text


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg)


def process_env(obj: Obj, configmap: dict[str, str], data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRELABEL_")}
    env.update(configmap)
    env.update({"HOME": str(data), "TMPDIR": str(data), "PATH": f"{PRELABEL.parent}:{env['PATH']}"})
    env["PRELABEL_CPU_COUNT"] = "1"  # shards run side by side on this machine's two cores
    for var in container(obj).get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
    return env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    for name in IMAGES:
        rgb = np.asarray(Image.open(SKIMAGE_DATA / name).convert("RGB"))
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=90)
        (root / name.replace(".png", ".jpg")).write_bytes(buf.getvalue())
    return root


def run_annotate(dataset: Path, results: Path, data: Path) -> list[int]:
    annotate = job("batch-annotate")
    configmap = batch_env("batch-annotate")
    count = int(configmap["PRELABEL_SHARD_COUNT"])
    spec = annotate["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == count
    (shard_var,) = [v for v in container(annotate)["env"] if v["name"] == "SHARD"]
    index_path = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert shard_var["valueFrom"]["fieldRef"]["fieldPath"] == index_path
    paths = mounts(annotate, {"input": dataset, "results": results, "data": data})
    procs = []
    for index in range(count):
        env = process_env(annotate, configmap, data)
        env["JOB_COMPLETION_INDEX"] = env["SHARD"] = str(index)  # what the Job controller sets
        args = [localize(expand(a, env), paths) for a in container(annotate)["args"]]
        procs.append(
            subprocess.Popen(
                [str(PRELABEL), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    codes = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        codes.append(p.returncode)
        assert p.returncode == 0, out
    return codes


def run_merge(results: Path, data: Path) -> subprocess.CompletedProcess[str]:
    merge = job("batch-merge")
    c = container(merge)
    assert c["command"] == ["/bin/sh", "-c"]
    paths = mounts(merge, {"results": results, "data": data})
    script = localize(c["args"][0], paths)
    env = process_env(merge, batch_env("batch-merge"), data)
    return subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=300
    )


def test_indexed_job_then_merge(dataset: Path, tmp_path: Path) -> None:
    results, data = tmp_path / "results", tmp_path / "data"
    results.mkdir()
    data.mkdir()
    assert batch_env("batch-annotate") == batch_env("batch-merge")  # one shard count for both
    run_annotate(dataset, results, data)
    shards = sorted((results / "shards").iterdir(), key=lambda p: int(p.name))
    count = int(batch_env("batch-annotate")["PRELABEL_SHARD_COUNT"])
    assert [p.name for p in shards] == [str(i) for i in range(count)]
    seen: list[str] = []
    for shard in shards:
        assert (shard / "run.json").exists()
        lines = (shard / "results.jsonl").read_text(encoding="utf-8").splitlines()
        seen += [json.loads(line)["key"] for line in lines]
    assert len(seen) == len(set(seen)) == len(IMAGES)  # each image in exactly one shard

    merged = run_merge(results, data)
    assert merged.returncode == 0, merged.stderr + merged.stdout
    coco = json.loads((results / "merged/annotations.json").read_text())
    names = sorted(Path(i["file_name"]).name for i in coco["images"])
    assert names == sorted(n.replace(".png", ".jpg") for n in IMAGES)
    labels = {c["id"]: c["name"] for c in coco["categories"]}
    astronaut = next(i["id"] for i in coco["images"] if "astronaut" in i["file_name"])
    found = {labels[a["category_id"]] for a in coco["annotations"] if a["image_id"] == astronaut}
    assert "person" in found

    # A shard that never ran (no folder) fails the merge, naming it.
    shutil.rmtree(shards[-1])
    broken = run_merge(results, data)
    assert broken.returncode == 1
    assert f"shards/{shards[-1].name}" in broken.stderr


def test_jobs_formats_agree() -> None:
    """The merge exports the format the shards were annotated for."""
    ann = container(job("batch-annotate"))["args"]
    fmt = ann[ann.index("--format") + 1]
    assert f"--format {fmt}" in container(job("batch-merge"))["args"][0]
    for name in ("batch-annotate", "batch-merge"):
        spec = pod_spec(job(name))
        assert spec["restartPolicy"] == "Never"
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert "prelabel-results" in claims
