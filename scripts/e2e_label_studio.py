"""End-to-end check against a real Label Studio: the ML-backend protocol as Label Studio itself
speaks it. Not part of CI (Label Studio is a large install); run it by hand:

    python3 -m venv /tmp/lsserver && /tmp/lsserver/bin/pip install label-studio==1.23.2
    .venv/bin/python scripts/e2e_label_studio.py --label-studio /tmp/lsserver/bin/label-studio

It starts Prelabel (default models) and Label Studio on loopback ports, with legacy tokens and
local-files serving on, then through Label Studio's own API: creates an image project (boxes,
brush masks, a smart keypoint) on a local-files storage and a text project (NER); connects
Prelabel as the ML backend (Label Studio calls /health and /setup); runs the Data Manager's
"retrieve predictions" action (one /predict with all tasks); checks the stored predictions;
retrieves again (no duplicates); asks for an interactive mask from a smart keypoint the way the
editor does (/api/ml/<id>/interactive-annotating); and stops both servers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

PROJECT = Path(__file__).resolve().parent.parent
TOKEN = "0123456789abcdef0123456789abcdef01234567"
IMAGE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Person"/><Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image"><Label value="Person"/><Label value="Cat"/></BrushLabels>
  <KeyPointLabels name="kp" toName="image" smart="true"><Label value="Person"/></KeyPointLabels>
</View>"""
TEXT_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text">
    <Label value="Company" predicted_values="ORG"/><Label value="Place" predicted_values="GPE"/>
    <Label value="Person" predicted_values="PERSON"/>
  </Labels>
</View>"""


def wait(url: str, seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not come up in {seconds:.0f} s")


def check(ok: bool, what: str) -> None:
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if not ok:
        raise SystemExit(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--label-studio", required=True, help="path of the label-studio command")
    p.add_argument("--ls-port", type=int, default=18080)
    p.add_argument("--prelabel-port", type=int, default=19090)
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="prelabel-e2e-"))
    images = work / "files" / "images"
    images.mkdir(parents=True)
    skimage_data = Path(__import__("skimage").__file__).parent / "data"
    for name in ("astronaut.png", "chelsea.png"):
        shutil.copy(skimage_data / name, images / name)
    env = {**os.environ, "PRELABEL_PORT": str(args.prelabel_port), "PRELABEL_LOG_LEVEL": "warning"}
    ls_env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(work / "base"),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false",
        "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(work / "files"),
    }
    prelabel_log = (work / "prelabel.log").open("w")
    ls_log = (work / "label-studio.log").open("w")
    procs = [
        subprocess.Popen(
            [str(PROJECT / ".venv/bin/prelabel"), "serve"],
            env=env,
            stdout=prelabel_log,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                args.label_studio,
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(args.ls_port),
                "--username",
                "e2e@example.com",
                "--password",
                "e2e-Passw0rd!",
                "--user-token",
                TOKEN,
            ],
            env=ls_env,
            stdout=ls_log,
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        run(args, images)
        print(f"all checks passed; logs in {work}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def run(args: argparse.Namespace, images: Path) -> None:
    ls = f"http://127.0.0.1:{args.ls_port}"
    backend = f"http://127.0.0.1:{args.prelabel_port}"
    wait(f"{backend}/readyz", 180)
    wait(f"{ls}/health", 600)
    api = httpx.Client(base_url=ls, headers={"Authorization": f"Token {TOKEN}"}, timeout=120)

    def call(method: str, url: str, **kw: Any) -> Any:
        r = api.request(method, url, **kw)
        if r.status_code >= 400:
            raise SystemExit(f"{method} {url}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    # -- image project on a local-files storage -------------------------------------------
    project = call(
        "POST", "/api/projects", json={"title": "e2e images", "label_config": IMAGE_CONFIG}
    )
    pid = project["id"]
    storage = call(
        "POST",
        "/api/storages/localfiles",
        json={
            "project": pid,
            "path": str(images),
            "use_blob_urls": True,
            "title": "images",
            "regex_filter": r".*\.png",
        },
    )
    call("POST", f"/api/storages/localfiles/{storage['id']}/sync")
    tasks = call("GET", "/api/tasks", params={"project": pid})["tasks"]
    check(len(tasks) == 2, f"2 tasks from local files ({[t['data']['image'] for t in tasks]})")
    ml = call(
        "POST",
        "/api/ml",
        json={"url": backend, "project": pid, "title": "Prelabel", "is_interactive": True},
    )
    check(ml.get("state") in ("CO", "CONNECTED", None) or "id" in ml, f"ML backend added: {ml}")

    def retrieve() -> list[dict[str, Any]]:
        call(
            "POST",
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": pid},
            json={"selectedItems": {"all": True, "excluded": []}},
        )
        return [call("GET", f"/api/tasks/{t['id']}") for t in tasks]

    done = retrieve()
    preds = {t["data"]["image"]: t.get("predictions") or [] for t in done}
    print({k: [(len(p["result"]), p["model_version"]) for p in v] for k, v in preds.items()})
    astronaut = next(v for k, v in preds.items() if "astronaut" in k)
    check(len(astronaut) == 1, "one prediction stored for the astronaut")
    kinds = {r["type"]: r for r in astronaut[0]["result"]}
    check({"rectanglelabels", "brushlabels"} <= set(kinds), f"boxes and masks ({sorted(kinds)})")
    check(kinds["rectanglelabels"]["value"]["rectanglelabels"] == ["Person"], "label Person")
    check(
        astronaut[0]["model_version"] == ml.get("model_version", astronaut[0]["model_version"]),
        "model_version as /setup returned it",
    )
    again = retrieve()
    counts = [len(t.get("predictions") or []) for t in again]
    check(
        counts == [len(v) for v in preds.values()], f"no duplicates on a second retrieve {counts}"
    )

    # -- interactive: a smart keypoint on the astronaut ------------------------------------
    task = next(t for t in tasks if "astronaut" in t["data"]["image"])
    context = {
        "result": [
            {
                "original_width": 512,
                "original_height": 512,
                "image_rotation": 0,
                "value": {
                    "x": 230 / 5.12,
                    "y": 110 / 5.12,
                    "width": 0.4,
                    "keypointlabels": ["Person"],
                },
                "is_positive": True,
                "id": "kp1",
                "from_name": "kp",
                "to_name": "image",
                "type": "keypointlabels",
                "origin": "manual",
            }
        ]
    }
    answer = call(
        "POST",
        f"/api/ml/{ml['id']}/interactive-annotating",
        json={"task": task["id"], "context": context},
    )
    result = (answer.get("data") or {}).get("result") or []
    check(bool(result) and result[0]["type"] == "brushlabels", f"interactive mask ({answer})"[:300])

    # -- text project ------------------------------------------------------------------------
    text_project = call(
        "POST", "/api/projects", json={"title": "e2e text", "label_config": TEXT_CONFIG}
    )
    tid = text_project["id"]
    call(
        "POST",
        f"/api/projects/{tid}/import",
        json=[{"text": "Apple opened an office in Paris, said Tim Cook."}],
    )
    call("POST", "/api/ml", json={"url": backend, "project": tid, "title": "Prelabel NER"})
    call(
        "POST",
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": tid},
        json={"selectedItems": {"all": True, "excluded": []}},
    )
    [ttask] = call("GET", "/api/tasks", params={"project": tid})["tasks"]
    full = call("GET", f"/api/tasks/{ttask['id']}")
    spans = {
        (r["value"]["text"], r["value"]["labels"][0])
        for p in full.get("predictions") or []
        for r in p["result"]
    }
    check(
        spans == {("Apple", "Company"), ("Paris", "Place"), ("Tim Cook", "Person")},
        f"text spans {sorted(spans)}",
    )


if __name__ == "__main__":
    sys.exit(main())
