"""Label Studio's own token, the way a default 1.23.2 install has it: legacy tokens off for the
organization (jwt_auth/models.py `legacy_api_tokens_enabled=False`; with the JWT feature flag on,
as label_studio/feature_flags.json ships it, jwt_auth/auth.py answers 401 to `Token <legacy>`).
Label Studio still hands the backend its legacy token in /setup (ml/api_connector.py
`project.created_by.auth_token.key`), so Prelabel can fetch task images only with the personal
access token its operator gives it (PRELABEL_LABEL_STUDIO_TOKEN), exchanged at
`POST /api/token/refresh/` for a Bearer access token.

The module turns legacy tokens off for the organization through Label Studio's API
(`POST /api/jwt/settings`) and back on at the end, so the other modules are not affected.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.labelstudio.checks import BOX_CLASSES, close, detect, percent_box, stored_box
from tests.labelstudio.lsapi import LabelStudio
from tests.labelstudio.servers import LS_TOKEN, free_port, start_prelabel
from tests.labelstudio.stack import ROOT, Stack

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Person"/><Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
</View>"""


@dataclass
class Personal:
    ls: LabelStudio  # a client on the personal access token
    prelabel: str  # Prelabel with PRELABEL_LABEL_STUDIO_TOKEN = that token


@pytest.fixture(scope="module")
def personal(stack: Stack) -> Iterator[Personal]:
    pat = str(stack.ls.call("POST", "/api/token/")["token"])
    port = free_port()
    env = {
        "PRELABEL_LABEL_STUDIO_URL": stack.ls_hostname,
        "PRELABEL_LABEL_STUDIO_TOKEN": pat,
        "PRELABEL_MODELS": "nanodet-g",
        "PRELABEL_DEFAULT_SAM": "",
        "PRELABEL_DEFAULT_NER": "",
    }
    service = start_prelabel(sys.executable, ROOT, port, stack.work, "prelabel-pat", env)
    stack.services["prelabel-pat"] = service
    client = LabelStudio.with_personal_token(stack.ls.url, pat)
    try:
        service.wait_http(f"http://127.0.0.1:{port}/readyz", 300)
        settings = {"api_tokens_enabled": True, "legacy_api_tokens_enabled": False}
        client.call("POST", "/api/jwt/settings", json=settings)
        yield Personal(client, f"http://127.0.0.1:{port}")
    finally:
        settings = {"api_tokens_enabled": True, "legacy_api_tokens_enabled": True}
        client.call("POST", "/api/jwt/settings", json=settings)
        client.close()
        service.stop()


def test_the_legacy_token_is_refused(stack: Stack, personal: Personal) -> None:
    """Negative control: the token /setup hands the backend no longer opens anything."""
    r = httpx.get(f"{stack.ls.url}/api/projects", headers={"Authorization": f"Token {LS_TOKEN}"})
    assert r.status_code == 401, r.text


def test_retrieve_predictions_with_a_personal_access_token(
    stack: Stack, personal: Personal
) -> None:
    ls = personal.ls
    pid = ls.project("personal token", CONFIG)
    ls.local_files(pid, str(stack.work / "files" / "images"), regex=r"astronaut\.png")
    [task] = ls.tasks(pid)
    backend = ls.connect(pid, personal.prelabel)
    assert backend["state"] == "CO", backend
    ls.retrieve_predictions(pid, [task["id"]])
    found = ls.predictions(task["id"])
    assert len(found) == 1, f"{found}\n{stack.logs()}"
    answer = detect(stack.prelabel, stack.image("astronaut.png"))
    expected = [d for d in answer["detections"] if d["label"] in BOX_CLASSES]
    boxes = found[0]["result"]
    assert len(boxes) == len(expected) > 0
    for d in expected:
        want = percent_box(d["box"], answer["width"], answer["height"])
        assert any(close(stored_box(r), want) for r in boxes), (want, boxes)
