"""Run a built Prelabel image the way its deployments do (scripts/check_image.sh's second half).

Everything about how the container starts comes from the image's own config (`buildah inspect`):
its user, entrypoint, command, environment, working directory and HEALTHCHECK; the only
overrides are PRELABEL_HOST=127.0.0.1 and a free PRELABEL_PORT, because buildah's chroot
isolation shares this machine's network. /data is a host folder owned by the image's user (an
emptyDir in Kubernetes). A listing of the rest of the root filesystem (every entry's mode,
owner, size and mtime) before and after the server and the batch Jobs proves they wrote nothing
outside /data. (Binding the root read-only works for the process, but buildah 1.28 then panics
while removing its mount points and loses the exit status, so the check is the listing.)

Steps: the image holds the wheel of its target and no build or test extras (torch, onnx,
pytest...); the server starts and the HEALTHCHECK command passes; a detect, a SAM embed and a
click, and NER requests (spaCy and the PII model) answer with the expected content on
real inputs (scikit-image's astronaut); SIGTERM with SAM embeds in flight drains it (they answer
200, exit 0, the drain log lines); then the batch Jobs' commands, as `kubectl kustomize
k8s/batch/...` renders them (tests/deploy), run in the image on six photographs, one process per
shard index, and the merge. Each step prints its time. Exits non-zero on the first failure.

    .venv/bin/python scripts/check_image_run.py --image TAG --root STORAGE --runroot RUNROOT
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import skimage
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.deploy.manifests import container, find, rendered  # noqa: E402

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left", "camera", "page")
DRAIN_PHOTOS = ("chelsea", "coffee", "motorcycle_left")
# Build and test extras that the service image must not carry.
FORBIDDEN = {"torch", "segment-anything", "onnx", "pytest", "mypy", "ruff", "scikit-image"}
# Paths that exist only while a container runs (buildah's mounts), skipped by the listing.
SKIP = ("/data", "/proc", "/sys", "/dev", "/input", "/out")


class Failed(Exception):
    pass


def check(ok: object, what: str) -> None:
    if not ok:
        raise Failed(what)


class Buildah:
    """buildah on one storage (vfs), running commands with chroot isolation."""

    def __init__(self, root: str, runroot: str) -> None:
        self.base = ["buildah", "--root", root, "--runroot", runroot, "--storage-driver", "vfs"]

    def __call__(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise Failed(f"buildah {' '.join(args[:3])}: {proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def run_cmd(
        self, ctr: str, argv: list[str], cfg: Config, env: dict[str, str], volumes: list[str]
    ) -> list[str]:
        cmd = [*self.base, "run", "--isolation", "chroot", "--user", cfg.user]
        cmd += ["--workingdir", cfg.workdir]
        for key, value in {**cfg.env, **env}.items():
            cmd += ["--env", f"{key}={value}"]
        for volume in volumes:
            cmd += ["--volume", volume]
        return [*cmd, ctr, "--", *argv]


class Config:
    """The parts of the image config (Docker format) a runtime uses to start a container."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.user: str = raw["User"]
        self.workdir: str = raw["WorkingDir"]
        self.entrypoint: list[str] = raw.get("Entrypoint") or []
        self.cmd: list[str] = raw.get("Cmd") or []
        self.env = dict(e.split("=", 1) for e in raw.get("Env") or [])
        self.health: dict[str, Any] = raw["Healthcheck"]
        self.uid, self.gid = (int(x) for x in self.user.split(":"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def listing(rootfs: Path) -> dict[str, tuple[int, int, int, int, int]]:
    """path -> (mode, uid, gid, size, mtime_ns) of everything under rootfs but SKIP."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(rootfs):
        rel = "/" + os.path.relpath(dirpath, rootfs).removeprefix(".")
        rel = rel.replace("//", "/")
        dirnames[:] = [d for d in dirnames if f"{rel.rstrip('/')}/{d}" not in SKIP]
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            # A directory's size and mtime change when buildah adds and removes its mount
            # points (/run/.containerenv); what the process writes shows up as entries.
            changes = (0, 0) if name in dirnames else (st.st_size, st.st_mtime_ns)
            out[f"{rel.rstrip('/')}/{name}"] = (st.st_mode, st.st_uid, st.st_gid, *changes)
    return out


def in_container(pid: int) -> int:
    """The topmost descendant of `pid` (buildah) that runs chrooted in the container and is not
    buildah's own helper: the image's entrypoint, the process a kubelet signals."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    queue = [pid]
    while queue:
        current = queue.pop(0)
        try:
            root = os.readlink(f"/proc/{current}/root")
            argv0 = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if root != "/" and not argv0.startswith(b"buildah"):
            return current
        queue += sorted(children.get(current, []))
    raise Failed(f"no process of the container under pid {pid}")


class Steps:
    def __init__(self) -> None:
        self.t0 = self.t = time.monotonic()

    def done(self, name: str, detail: str = "") -> None:
        now = time.monotonic()
        print(f"image step: {name} took {now - self.t:.1f} s{'; ' + detail if detail else ''}")
        self.t = now


def photo_jpeg(name: str) -> bytes:
    rgb = np.asarray(Image.open(SKIMAGE_DATA / f"{name}.png").convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def health_argv(cfg: Config) -> list[str]:
    test: list[str] = cfg.health["Test"]
    if test[0] == "CMD":
        return test[1:]
    check(test[0] == "CMD-SHELL", f"HEALTHCHECK {test}")
    return ["/bin/sh", "-c", test[1]]


def serve_and_query(b: Buildah, ctr: str, cfg: Config, data: Path, steps: Steps) -> str:
    """Start the image's entrypoint + command, wait on its HEALTHCHECK, query, SIGTERM it."""
    port = free_port()
    env = {"PRELABEL_HOST": "127.0.0.1", "PRELABEL_PORT": str(port)}
    volumes = [f"{data}:/data"]
    log_path = data.parent / "serve.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            b.run_cmd(ctr, cfg.entrypoint + cfg.cmd, cfg, env, volumes),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group, killed whole on a failure
        )
    try:
        # The HEALTHCHECK's own command, polled (Docker runs it every Interval after StartPeriod;
        # here every 2 s within StartPeriod + Retries x Interval).
        health = b.run_cmd(ctr, health_argv(cfg), cfg, env, volumes)
        ns = 1e-9
        budget = (cfg.health["StartPeriod"] + cfg.health["Retries"] * cfg.health["Interval"]) * ns
        deadline = time.monotonic() + budget
        while True:
            if proc.poll() is not None:
                raise Failed(f"server exited {proc.returncode}: {log_path.read_text()[-3000:]}")
            timeout = cfg.health["Timeout"] * ns + 30  # + buildah's own start
            probe = subprocess.run(health, capture_output=True, text=True, timeout=timeout)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise Failed(
                    f"HEALTHCHECK never passed in {budget:.0f} s (last: {probe.stderr[-1500:]}); "
                    f"server log: {log_path.read_text()[-3000:]}"
                )
            time.sleep(2)
        steps.done("start until HEALTHCHECK passes")

        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=120) as http:
            astronaut = (SKIMAGE_DATA / "astronaut.png").read_bytes()
            files = {"file": ("astronaut.png", astronaut, "image/png")}
            r = http.post("/v1/detect", files=files)
            check(r.status_code == 200, f"detect: {r.status_code} {r.text}")
            labels = [d["label"] for d in r.json()["detections"]]
            check("person" in labels, f"detect found no person on the astronaut: {labels}")
            r = http.post("/v1/sam/embed", files=files)
            check(r.status_code == 200, f"sam embed: {r.status_code} {r.text}")
            emb = r.json()["embedding_id"]
            click = {"embedding_id": emb, "points": [{"x": 250, "y": 150, "positive": True}]}
            r = http.post("/v1/sam/segment", json=click)
            check(r.status_code == 200, f"sam segment: {r.status_code} {r.text}")
            mask = r.json()["masks"][0]
            check(mask["area"] > 1000 and r.json()["encoder_cached"], f"sam click: {mask}")
            text = "Apple opened an office in Paris, said Tim Cook."
            r = http.post("/v1/ner", json={"texts": [text]})
            check(r.status_code == 200, f"ner: {r.status_code} {r.text}")
            spans = {(s["text"], s["label"]) for s in r.json()["results"][0]["spans"]}
            check({("Apple", "ORG"), ("Paris", "GPE")} <= spans, f"ner spans: {spans}")
            pii = {"model": "pii", "texts": ["Mail jane.doe@example.com"], "min_score": 0.5}
            r = http.post("/v1/ner", json=pii)
            check(r.status_code == 200, f"ner pii: {r.status_code} {r.text}")
            found = [s["text"] for s in r.json()["results"][0]["spans"]]
            check(any("jane.doe@example.com" in s for s in found), f"pii spans: {found}")
            steps.done("detect, SAM embed + click, NER (spaCy, pii)", f"{len(labels)} boxes")

            # Drain: three SAM embeds at once (the encoder runs one image at a time, ~0.7 s
            # each here); SIGTERM to the entrypoint's process as soon as the first answers, so
            # the others are in flight; they must still answer 200, then the process exit 0.
            def embed(name: str) -> httpx.Response:
                data = (SKIMAGE_DATA / f"{name}.png").read_bytes()
                return http.post("/v1/sam/embed", files={"file": (f"{name}.png", data)})

            pid = in_container(proc.pid)
            with ThreadPoolExecutor(len(DRAIN_PHOTOS)) as pool:
                futures = [pool.submit(embed, name) for name in DRAIN_PHOTOS]
                wait(futures, return_when=FIRST_COMPLETED)
                os.kill(pid, signal.SIGTERM)
                codes = [f.result().status_code for f in futures]
            rc = proc.wait(timeout=90)
        log = log_path.read_text()
        check(codes == [200] * len(DRAIN_PHOTOS), f"embeds across SIGTERM: {codes}")
        check(rc == 0, f"exit {rc} after SIGTERM: {log[-3000:]}")
        busy = re.search(r"SIGTERM: draining .*?; (\d+) requests in flight", log)
        in_flight = int(busy.group(1)) if busy else 0
        check(in_flight >= 1, f"no in-flight request drained: {log[-3000:]}")
        check(re.search(r"drained: no request in flight", log), f"no drain line: {log[-3000:]}")
        check("shutdown complete" in log, f"no shutdown line: {log[-3000:]}")
        steps.done("SIGTERM until exit 0", f"{in_flight} requests in flight drained, all 200")
        return log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # buildah and the container's processes
            proc.wait()


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command and args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg)


def job_cmd(
    b: Buildah, ctr: str, cfg: Config, name: str, folders: dict[str, Path], extra: dict[str, str]
) -> list[str]:
    """The rendered Job's container, as a kubelet starts it: command (or the image's
    entrypoint) + args (or the image's command), env from the ConfigMap then `env`, volumes."""
    objs = rendered(name)
    c = container(find(objs, "Job"))
    env = dict(find(objs, "ConfigMap", "prelabel-batch")["data"])
    env.update({v["name"]: v["value"] for v in c.get("env", []) if "value" in v})
    env.update(extra)
    argv = [expand(a, env) for a in (c.get("command") or cfg.entrypoint)]
    argv += [expand(a, env) for a in (c.get("args") or cfg.cmd)]
    volumes = [
        f"{folders[m['name']]}:{m['mountPath']}{':ro' if m.get('readOnly') else ''}"
        for m in c["volumeMounts"]
    ]
    return b.run_cmd(ctr, argv, cfg, env, volumes)


def batch(b: Buildah, ctr: str, cfg: Config, work: Path, steps: Steps) -> None:
    dataset, results = work / "dataset", work / "results"
    dataset.mkdir()
    results.mkdir()
    for name in PHOTOS:
        (dataset / f"{name}.jpg").write_bytes(photo_jpeg(name))
    os.chown(results, cfg.uid, cfg.gid)
    count = int(
        find(rendered("batch-annotate"), "ConfigMap", "prelabel-batch")["data"][
            "PRELABEL_SHARD_COUNT"
        ]
    )
    procs = []
    for index in range(count):
        data = work / f"data-{index}"  # an emptyDir per pod
        data.mkdir(mode=0o700)
        os.chown(data, cfg.uid, cfg.gid)
        folders = {"input": dataset, "results": results, "data": data}
        # What the Job controller sets: the index, in the env and in the annotation SHARD reads.
        index_env = {"JOB_COMPLETION_INDEX": str(index), "SHARD": str(index)}
        cmd = job_cmd(b, ctr, cfg, "batch-annotate", folders, index_env)
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    for index, p in enumerate(procs):
        out, _ = p.communicate(timeout=600)
        check(p.returncode == 0, f"annotate shard {index}: exit {p.returncode}: {out[-3000:]}")
    steps.done("batch annotate Job", f"{count} shards in parallel on {len(PHOTOS)} images")

    data = work / "data-merge"
    data.mkdir(mode=0o700)
    os.chown(data, cfg.uid, cfg.gid)
    cmd = job_cmd(b, ctr, cfg, "batch-merge", {"results": results, "data": data}, {})
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    check(proc.returncode == 0, f"merge: exit {proc.returncode}: {proc.stdout}{proc.stderr}")
    coco = json.loads((results / "merged/annotations.json").read_text())
    names = sorted(Path(i["file_name"]).name for i in coco["images"])
    check(names == sorted(f"{n}.jpg" for n in PHOTOS), f"merged images: {names}")
    person = next(c["id"] for c in coco["categories"] if c["name"] == "person")
    astronaut = next(i["id"] for i in coco["images"] if "astronaut" in i["file_name"])
    check(
        any(a["image_id"] == astronaut and a["category_id"] == person for a in coco["annotations"]),
        "merged export: no person on the astronaut",
    )
    steps.done("batch merge Job", f"{len(coco['annotations'])} boxes on {len(names)} images")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--runroot", required=True)
    args = parser.parse_args()
    b = Buildah(args.root, args.runroot)
    steps = Steps()
    cfg = Config(json.loads(b("inspect", "--type", "image", args.image))["Docker"]["config"])
    print(
        f"image config: user {cfg.user}, workdir {cfg.workdir}, entrypoint {cfg.entrypoint}, "
        f"cmd {cfg.cmd}, healthcheck {cfg.health['Test']}"
    )
    work = Path(tempfile.mkdtemp(prefix="prelabel-image-"))
    ctr = b("from", "--pull=never", "--name", f"prelabel-check-{os.getpid()}", args.image).strip()
    try:
        rootfs = Path(b("mount", ctr).strip())
        probe = "import importlib.metadata as m; print(*(d.name for d in m.distributions()))"
        dists = {
            n.lower()
            for n in subprocess.run(
                b.run_cmd(ctr, ["python", "-c", probe], cfg, {}, []),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
        }
        check(not dists & FORBIDDEN, f"the image carries {sorted(dists & FORBIDDEN)}")
        check("onnxruntime" in dists and "prelabel" in dists, f"distributions: {sorted(dists)}")
        steps.done("container, distributions", f"{len(dists)}, none of {sorted(FORBIDDEN)}")

        data = work / "data"
        data.mkdir(mode=0o700)
        os.chown(data, cfg.uid, cfg.gid)
        # Negative control: a file the image's user writes in /tmp shows in the listing.
        before = listing(rootfs)
        touch = ["python", "-c", "open('/tmp/prelabel-check', 'w').close()"]
        subprocess.run(b.run_cmd(ctr, touch, cfg, {}, []), capture_output=True, check=True)
        check(listing(rootfs).keys() - before.keys() == {"/tmp/prelabel-check"}, "listing")
        (rootfs / "tmp/prelabel-check").unlink()
        before = listing(rootfs)
        serve_and_query(b, ctr, cfg, data, steps)
        batch(b, ctr, cfg, work, steps)
        after = listing(rootfs)
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        check(not changed, f"the container wrote outside /data: {changed[:20]}")
        written = sorted(str(p.relative_to(data)) for p in data.rglob("*"))
        steps.done("root filesystem unchanged", f"/data holds {written[:10]}")
    except Failed as e:
        print(f"image check FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        subprocess.run([*b.base, "rm", ctr], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(f"image run: passed in {time.monotonic() - steps.t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
