"""An image project in a running Label Studio, for every storage Label Studio serves images from
here: Local Files, uploads, and S3 (moto) with presigned URLs and proxied through Label Studio.
Prelabel is connected by URL; everything goes through Label Studio's API, and the assertions
are on what Label Studio stored (or relayed, for the editor's smart clicks).

What Label Studio sends the backend as task data (`TaskSimpleSerializer`, unresolved; the same as
`GET /api/tasks/<id>?resolve_uri=false`), checked in `test_task_data_as_label_studio_sends_it`:
- Local Files: `/data/local-files/?d=images/astronaut.png` (io_storages/localfiles/models.py;
  `<HOST>/data/local-files/?d=...` when Label Studio's HOST is set: the `local-files-url` case),
  served by io_storages/localfiles/views.py only below a Local Files storage the user can see;
- upload: `/data/upload/<project>/<8 hex>-astronaut.png` (data_import/models.py FileUpload);
- S3: `s3://<bucket>/<key>`; Label Studio resolves it at
  `/tasks/<id>/resolve/?fileuri=<base64url(s3://...)>` (io_storages/proxy_api.py): a 303 to a
  presigned URL on the S3 origin when the storage has `presign` on, else it streams the object
  itself. Every one of these views answers 406 to `Accept: image/*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.labelstudio.checks import (
    BOX_CLASSES,
    BRUSH_CLASSES,
    close,
    detect,
    iou,
    percent_box,
    segment,
    stored_box,
)
from tests.labelstudio.sdk import decode_brushes
from tests.labelstudio.stack import BUCKET, IMAGES, Stack

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Person"/><Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image"><Label value="Person"/><Label value="Cat"/></BrushLabels>
  <KeyPointLabels name="kp" toName="image" smart="true"><Label value="Person"/></KeyPointLabels>
  <RectangleLabels name="sbox" toName="image" smart="true"><Label value="Person"/></RectangleLabels>
</View>"""

STORAGES = ("local-files", "local-files-url", "upload", "s3-presigned", "s3-proxied")
SENT = {
    "local-files": r"/data/local-files/\?d=images/{name}",
    "local-files-url": r"http://localhost:\d+/data/local-files/\?d=images/{name}",
    "upload": r"/data/upload/\d+/[0-9a-f]{{8}}-{name}",
    "s3-presigned": rf"s3://{BUCKET}/photos/{{name}}",
    "s3-proxied": rf"s3://{BUCKET}/photos/{{name}}",
}


@dataclass
class Project:
    storage: str
    id: int
    backend: int
    tasks: dict[str, int]  # image file name -> task id


def make_project(stack: Stack, storage: str) -> Project:
    ls = stack.ls
    pid = ls.project(f"images on {storage}", CONFIG, show_collab_predictions=True)
    if storage == "local-files":
        ls.local_files(pid, str(stack.work / "files" / "images"))
    elif storage == "local-files-url":
        # What Label Studio stores for Local Files when its HOST is set: an absolute URL on
        # itself (imported as JSON here, on a storage that is not synced).
        ls.local_files(pid, str(stack.work / "files" / "images"), sync=False)
        url = stack.ls_hostname + "/data/local-files/?d=images/"
        ls.import_tasks(pid, [{"image": url + name} for name in IMAGES])
    elif storage == "upload":
        for name in IMAGES:
            ls.upload(pid, name, stack.image(name), "image/png")
    else:
        ls.s3(pid, stack.moto, BUCKET, "photos", presign=storage == "s3-presigned")
    tasks = {}
    for t in ls.tasks(pid):
        raw = ls.call("GET", f"/api/tasks/{t['id']}", params={"resolve_uri": "false"})
        name = next(n for n in IMAGES if raw["data"]["image"].endswith(n))
        tasks[name] = int(t["id"])
    assert sorted(tasks) == sorted(IMAGES), tasks
    backend = ls.connect(pid, stack.prelabel, is_interactive=True)
    assert backend["state"] == "CO", backend
    return Project(storage, pid, int(backend["id"]), tasks)


@pytest.fixture(scope="module", params=STORAGES)
def project(request: pytest.FixtureRequest, stack: Stack) -> Iterator[Project]:
    yield make_project(stack, request.param)


def stored(stack: Stack, task: int) -> list[dict[str, Any]]:
    return stack.ls.predictions(task)


def retrieve_all(stack: Stack, project: Project) -> dict[str, list[dict[str, Any]]]:
    stack.ls.retrieve_predictions(project.id, sorted(project.tasks.values()))
    return {name: stored(stack, tid) for name, tid in project.tasks.items()}


def test_task_data_as_label_studio_sends_it(stack: Stack, project: Project) -> None:
    for name, tid in project.tasks.items():
        raw = stack.ls.call("GET", f"/api/tasks/{tid}", params={"resolve_uri": "false"})
        pattern = SENT[project.storage].format(name=re.escape(name))
        assert re.fullmatch(pattern, raw["data"]["image"]), raw["data"]


def test_label_stream_brings_a_task_with_its_prediction(stack: Stack, project: Project) -> None:
    task = stack.ls.next_task(project.id)
    assert task["id"] in project.tasks.values()
    kinds = {r["type"] for p in task["predictions"] for r in p["result"]}
    assert {"rectanglelabels", "brushlabels"} <= kinds, task["predictions"]


def test_retrieve_predictions_stores_boxes_and_masks_matching_prelabel(
    stack: Stack, project: Project
) -> None:
    preds = retrieve_all(stack, project)
    for name, found in preds.items():
        assert len(found) == 1, f"{name}: {found}\n{stack.logs()}"
        prediction = found[0]
        results = prediction["result"]
        assert prediction["model_version"], prediction
        answer = detect(stack.prelabel, stack.image(name))
        w, h = answer["width"], answer["height"]
        expected = [d for d in answer["detections"] if d["label"] in BOX_CLASSES]
        assert expected, f"the detector finds nothing on {name}: the check would be empty"
        boxes = [r for r in results if r["from_name"] == "box"]
        assert {r["type"] for r in boxes} == {"rectanglelabels"}
        assert len(boxes) == len(expected), (boxes, expected)
        for d in expected:
            want = percent_box(d["box"], w, h)
            hits = [
                r
                for r in boxes
                if r["value"]["rectanglelabels"] == [BOX_CLASSES[d["label"]]]
                and close(stored_box(r), want)
            ]
            assert hits, f"{name}: no stored box {BOX_CLASSES[d['label']]} at {want}: {boxes}"
            assert (hits[0]["original_width"], hits[0]["original_height"]) == (w, h)
        brushes = [r for r in results if r["from_name"] == "brush"]
        assert {r["type"] for r in brushes} == {"brushlabels"}
        assert all(r["value"]["format"] == "rle" for r in brushes)
        masks = decode_brushes(stack.sdk_python, brushes)
        wanted = [d for d in expected if d["label"] in BRUSH_CLASSES]
        assert len(masks) == len(wanted)
        for d in wanted:
            mine = segment(stack.prelabel, stack.image(name), box=d["box"])
            best = max(iou(m, mine) for m in masks)
            assert best == 1.0, f"{name}: the stored mask differs from /v1/sam/segment (IoU {best})"


def test_retrieving_again_stores_no_duplicates(stack: Stack, project: Project) -> None:
    before = {name: stored(stack, tid) for name, tid in project.tasks.items()}
    after = retrieve_all(stack, project)
    assert {n: [p["id"] for p in v] for n, v in after.items()} == {
        n: [p["id"] for p in v] for n, v in before.items()
    }
    assert all(len(v) == 1 for v in after.values()), after


def smart_region(kind: str, value: dict[str, Any], positive: bool = True) -> dict[str, Any]:
    name = "kp" if kind == "keypointlabels" else "sbox"
    return {
        "original_width": 512,
        "original_height": 512,
        "image_rotation": 0,
        "value": {**value, kind: ["Person"]},
        "is_positive": positive,
        "id": f"{name}-{value['x']:.1f}-{value['y']:.1f}",
        "from_name": name,
        "to_name": "image",
        "type": kind,
        "origin": "manual",
    }


@pytest.mark.parametrize("tool", ["keypoint", "keypoints+-", "rectangle"])
def test_smart_click_answers_prelabels_mask(stack: Stack, project: Project, tool: str) -> None:
    """The editor's smart tools on the astronaut (512 x 512): a keypoint on her face, the same
    with a negative one on the background, a rectangle around her head; Label Studio relays one
    brush mask, the one /v1/sam/segment gives for the same prompt."""
    image = stack.image("astronaut.png")
    if tool.startswith("keypoint"):
        clicks = [(230.0, 110.0, True)] + ([(60.0, 450.0, False)] if tool.endswith("-") else [])
        regions = [
            smart_region("keypointlabels", {"x": x / 5.12, "y": y / 5.12, "width": 0.4}, positive)
            for x, y, positive in clicks
        ]
        points = [{"x": x, "y": y, "positive": positive} for x, y, positive in clicks]
        mine = segment(stack.prelabel, image, points=points)
    else:
        box = [150.0, 20.0, 320.0, 200.0]
        x, y, bw, bh = percent_box(box, 512, 512)
        regions = [smart_region("rectanglelabels", {"x": x, "y": y, "width": bw, "height": bh})]
        mine = segment(stack.prelabel, image, box=box)
    answer = stack.ls.interactive(
        project.backend, project.tasks["astronaut.png"], {"result": regions}
    )
    assert "errors" not in answer, f"{answer}\n{stack.logs()}"
    results = answer["data"]["result"]
    assert [r["type"] for r in results] == ["brushlabels"], results
    [mask] = decode_brushes(stack.sdk_python, results)
    assert mask.shape == (512, 512)
    assert mine.sum() > 1000, "SAM gives no mask here: the comparison would be empty"
    assert iou(mask, mine) == 1.0
