"""Prelabel with an API key behind Label Studio's ML-backend "Basic Auth" settings, against the
running Label Studio: connecting (Label Studio calls /health and /setup with the credentials,
ml/serializers.py), "Retrieve predictions" (/predict), and the backend's webhook once the project's
webhook carries the key in a header. A wrong key is refused at connect time with Label Studio's
own message. Label Studio sends the user and password with requests' HTTPBasicAuth on every
backend call (ml/api_connector.py `_prepare_kwargs`); Prelabel takes the password as the key."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.labelstudio.lsapi import LabelStudioError
from tests.labelstudio.stack import Stack
from tests.labelstudio.test_text import CONFIG

TEXT = "Apple opened an office in Paris, said Tim Cook."


def basic(key: str) -> dict[str, Any]:
    return {"auth_method": "BASIC_AUTH", "basic_auth_user": "labelstudio", "basic_auth_pass": key}


def events(stack: Stack) -> list[dict[str, Any]]:
    if not stack.events.exists():
        return []
    lines = stack.events.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def annotation_events(stack: Stack, annotation: int) -> list[dict[str, Any]]:
    return [
        e
        for e in events(stack)
        if e.get("action") == "ANNOTATION_CREATED"
        and (e.get("annotation") or {}).get("id") == annotation
    ]


def test_the_key_is_required(stack: Stack) -> None:
    """Negative control: the keyed Prelabel refuses /setup without a key."""
    r = httpx.post(f"{stack.keyed}/setup", json={"project": "1.1", "schema": CONFIG})
    assert r.status_code == 401, r.text


def test_a_wrong_key_is_an_error_in_label_studio(stack: Stack) -> None:
    ls = stack.ls
    pid = ls.project("wrong key", CONFIG)
    with pytest.raises(LabelStudioError) as refused:
        ls.connect(pid, stack.keyed, **basic("pl_" + "x" * 43))
    assert refused.value.status == 400
    assert "authentication parameters were either not provided or are incorrect" in str(
        refused.value
    ), str(refused.value)
    assert ls.call("GET", "/api/ml", params={"project": pid}) == []


def test_basic_auth_key_predicts_and_the_webhook_header_delivers(stack: Stack) -> None:
    ls = stack.ls
    pid = ls.project("basic auth", CONFIG)
    ls.import_tasks(pid, [{"text": TEXT}])
    backend = ls.connect(pid, stack.keyed, **basic(stack.key))
    assert backend["state"] == "CO", backend
    assert backend["auth_method"] == "BASIC_AUTH"
    # Label Studio re-checks the connection (/health, /setup) on a GET of the backend.
    assert ls.backend(backend["id"])["state"] == "CO"
    [task] = ls.tasks(pid)
    ls.retrieve_predictions(pid, [task["id"]])
    [prediction] = ls.predictions(task["id"])
    labels = {(r["value"]["text"], r["value"]["labels"][0]) for r in prediction["result"]}
    assert labels == {("Apple", "Company"), ("Paris", "Place"), ("Tim Cook", "Person")}

    # The webhook Label Studio made for the backend carries no credentials: Prelabel refuses
    # it (nothing recorded) until the project's webhook has the key in a header.
    [hook] = [h for h in ls.webhooks(pid) if h["url"] == stack.keyed + "/webhook"]
    region = {
        "from_name": "ner",
        "to_name": "text",
        "type": "labels",
        "value": {"start": 0, "end": 5, "text": "Apple", "labels": ["Company"]},
    }
    first = ls.annotate(task["id"], [region])
    ls.call(
        "PATCH",
        f"/api/webhooks/{hook['id']}",
        json={"headers": {"Authorization": f"Token {stack.key}"}},
    )
    second = ls.annotate(task["id"], [region])
    # Label Studio posts the webhook within the annotation request (webhooks/utils.py, no
    # queue configured); poll a little all the same.
    deadline = time.monotonic() + 15
    while not annotation_events(stack, second) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert annotation_events(stack, first) == [], "an event without the key was accepted"
    [event] = annotation_events(stack, second)
    assert event["task"]["id"] == task["id"]
    assert event["annotation"]["result"][0]["value"]["text"] == "Apple"
