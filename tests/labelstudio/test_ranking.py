"""Label Studio orders a project's tasks by Prelabel's uncertainty: every prediction's `score` is
1 - the task's uncertainty (app/domain/labelstudio/ranking.py). With the project's sampling set
to "Uncertainty sampling" and its model_version set to Prelabel's, `GET /api/projects/<id>/next`
serves the least sure task first, and the Data Manager's prediction score sorts the same way."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image, ImageFilter

from tests.labelstudio.checks import detect
from tests.labelstudio.stack import Stack

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Person"/><Label value="Cat"/>
  </RectangleLabels>
</View>"""
THRESHOLD = 0.35  # PRELABEL_LS_SCORE_THRESHOLD's default: boxes below it are not written


def blurred_corner(astronaut: bytes) -> bytes:
    """A 160 x 160 crop of the astronaut photo's backdrop, blurred: nothing to find in it."""
    img = Image.open(io.BytesIO(astronaut)).convert("RGB").crop((0, 0, 160, 160))
    out = io.BytesIO()
    img.filter(ImageFilter.GaussianBlur(12)).resize((320, 320)).save(out, "PNG")
    return out.getvalue()


def best_label_score(stack: Stack, image: bytes) -> float:
    """The best Person/Cat box score Prelabel's /v1/detect gives (0 when none passes)."""
    found = detect(stack.prelabel, image)["detections"]
    return max(
        (d["score"] for d in found if d["label"] in ("person", "cat") and d["score"] >= THRESHOLD),
        default=0.0,
    )


def test_uncertainty_sampling_serves_least_sure_task_first(stack: Stack) -> None:
    ls = stack.ls
    images = {
        "astronaut.png": stack.image("astronaut.png"),
        "chelsea.png": stack.image("chelsea.png"),
        "blank.png": blurred_corner(stack.image("astronaut.png")),
    }
    pid = ls.project(
        "ranked images", CONFIG, sampling="Uncertainty sampling", show_collab_predictions=True
    )
    for name, data in images.items():
        ls.upload(pid, name, data, "image/png")
    backend = ls.connect(pid, stack.prelabel)
    assert backend["state"] == "CO", backend
    version = ls.backend(backend["id"])["model_version"]
    assert version
    tasks = ls.tasks(pid)
    ls.retrieve_predictions(pid, [t["id"] for t in tasks])
    # What the user picks in Settings > Predictions once predictions exist (Label Studio
    # refuses a version no prediction has): Prelabel's version, not the backend's title.
    ls.call("PATCH", f"/api/projects/{pid}", json={"model_version": version})

    name_of = {t["id"]: next(n for n in images if t["data"]["image"].endswith(n)) for t in tasks}
    expected = {n: round(best_label_score(stack, data), 4) for n, data in images.items()}
    # The check needs three different levels of difficulty, the blank one found empty.
    assert expected["blank.png"] == 0.0 and len(set(expected.values())) == 3, expected
    stored: dict[str, float] = {}
    for task in tasks:
        [prediction] = ls.predictions(task["id"])
        assert prediction["model_version"] == version
        stored[name_of[task["id"]]] = prediction["score"]
    assert stored == {n: round(s, 4) for n, s in expected.items()}, stored
    by_uncertainty = sorted(images, key=lambda n: expected[n])  # least sure first

    # Data Manager: the prediction score column sorts the tasks the same way.
    query = json.dumps({"ordering": ["tasks:predictions_score"]})
    listed: list[dict[str, Any]] = ls.call(
        "GET", "/api/tasks", params={"project": pid, "query": query, "page_size": 10}
    )["tasks"]
    assert [name_of[t["id"]] for t in listed] == by_uncertainty

    # The label stream: /next serves the least sure unlabeled task; labeling it moves on.
    served = []
    for _ in images:
        task = ls.next_task(pid)
        served.append(name_of[task["id"]])
        ls.annotate(task["id"], [])
    assert served == by_uncertainty
