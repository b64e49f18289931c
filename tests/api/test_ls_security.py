"""The Label Studio path, tried as an attacker would (issue 10), on loopback canaries: what the
canary logged is the evidence. Each test failed on the code before the trust model."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.ls_canary import Canary, label_studio_side
from tests.conftest import metric, portal

IMAGE_CONFIG = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="person"/></RectangleLabels>
  <BrushLabels name="brush" toName="image"><Label value="person"/></BrushLabels>
</View>"""
TEXT_CONFIG = """<View><Text name="text" value="$text"/>
  <Labels name="ner" toName="text">
    <Label value="Person" predicted_values="PERSON"/><Label value="Org" predicted_values="ORG"/>
  </Labels></View>"""
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTksInRva2VuX3R5cGUiOiJyZWZyZXNoIn0.c2ln"


def setup(client: TestClient, project: str, host: str, token: str | None = None) -> None:
    body = {"project": project, "schema": IMAGE_CONFIG, "hostname": host, "access_token": token}
    r = client.post("/setup", json=body)
    assert r.status_code == 200, r.text


def predict(client: TestClient, project: str, *tasks: dict[str, object]) -> list[Any]:
    """Label Studio's /predict for `tasks`: one prediction (a dict, or [] for none) per task."""
    r = client.post("/predict", json={"tasks": list(tasks), "project": project})
    assert r.status_code == 200, r.text
    results: list[Any] = r.json()["results"]
    return results


def test_a_setup_host_is_not_trusted_ssrf_refused(client: TestClient) -> None:
    """POST /setup names a loopback service; /predict must not make Prelabel call it (no GET,
    no token refresh POST), unless the operator allowed that origin."""
    with Canary() as internal, label_studio_side(client) as rt:
        setup(client, "501.1", internal.origin, JWT)
        task = {"id": 1, "data": {"image": "/internal/admin/delete-everything?confirm=yes"}}
        assert predict(client, "501.1", task) == [[]]
        assert internal.hits == []
        rt.ls_projects.origins = type(rt.ls_projects.origins)(allowed=[internal.origin])
        setup(client, "501.1", internal.origin, JWT)  # now the operator's: reached
        predict(client, "501.1", {"id": 2, "data": {"image": "/data/upload/1/a.png"}})
        assert [(h.method, h.path) for h in internal.hits] == [
            ("POST", "/api/token/refresh"),
            ("GET", "/data/upload/1/a.png"),
        ]


@pytest.mark.parametrize(
    "template",
    [
        "/{evil}/x.jpg",  # "/http://127.0.0.1:<port>/x.jpg": joined, it was that URL
        "//{host}/x.jpg",
        "/\\{host}/x.jpg",
        "\\\\{host}/x.jpg",
        "/%2F{host}/x.jpg",
        "/\t/{host}/x.jpg",
        "{evil}/x.jpg",  # an absolute URL elsewhere: PRELABEL_LS_ALLOW_EXTERNAL_URLS is off
    ],
)
def test_relative_references_stay_on_label_studio(client: TestClient, template: str) -> None:
    with (
        Canary() as ls,
        Canary() as evil,  # stands for any public host (loopback_is_public)
        label_studio_side(client, allowed=(ls.origin,), loopback_is_public=True) as rt,
    ):
        setup(client, "502.1", ls.origin, "ls-secret")
        ref = template.format(evil=evil.origin, host=evil.origin.removeprefix("http://"))
        predict(client, "502.1", {"id": 1, "data": {"image": ref}})
        # Through the TASKS_CREATED webhook with precomputed embeddings, too.
        rt.settings.ls_precompute_embeddings = True
        try:
            event = {"action": "TASKS_CREATED", "project": {"id": 502}, "tasks": [
                {"id": 2, "data": {"image": ref}}
            ]}  # fmt: skip
            assert client.post("/webhook", json=event).status_code == 200
            portal(client).call(rt.ls_predictor.drain)
        finally:
            rt.settings.ls_precompute_embeddings = False
        assert evil.hits == []
        for hit in ls.hits:  # what did reach Label Studio is a path on it
            assert hit.headers["host"] == ls.origin.removeprefix("http://")


def test_the_operators_token_goes_only_to_the_operators_host(client: TestClient) -> None:
    with (
        Canary() as operator,
        Canary() as other,
        label_studio_side(
            client, default_host=operator.origin, default_token="op-secret", loopback_is_public=True
        ),
    ):
        setup(client, "503.1", other.origin)  # a host, no token: not the operator's token
        predict(client, "503.1", {"id": 1, "data": {"image": "/data/upload/1/a.png"}})
        assert other.hits and all("authorization" not in h.headers for h in other.hits)
        setup(client, "504.1", operator.origin)  # the operator's own host: its token
        predict(client, "504.1", {"id": 1, "data": {"image": "/data/upload/1/a.png"}})
        assert [h.headers.get("authorization") for h in operator.hits] == ["Token op-secret"]
        setup(client, "505.1", other.origin, "caller-token")  # a caller's token, its host only
        predict(client, "505.1", {"id": 3, "data": {"image": "/data/upload/1/b.png"}})
        assert other.hits[-1].headers.get("authorization") == "Token caller-token"
        assert len(operator.hits) == 1


def test_results_are_scoped_by_project_credentials_and_task_data(client: TestClient) -> None:
    """Same config, same task id, two projects: each gets the spans of its own text."""
    first = {"id": 1, "data": {"text": "John Smith was treated at the Mayo Clinic."}}
    second = {"id": 1, "data": {"text": "Apple hired Tim Cook."}}
    for project, host in (("506.1", "http://ls-a.test"), ("507.1", "http://ls-b.test")):
        body = {"project": project, "schema": TEXT_CONFIG, "hostname": host, "access_token": "t"}
        assert client.post("/setup", json=body).status_code == 200
    [a] = predict(client, "506.1", first)
    [b] = predict(client, "507.1", second)
    [planted] = predict(client, "506.1", {"id": 2, "data": {"text": "Mayo Clinic"}})
    [again] = predict(client, "506.1", {"id": 2, "data": {"text": "Apple hired Tim Cook."}})

    def spans(prediction: dict[str, Any]) -> set[str]:
        return {r["value"]["text"] for r in prediction["result"]}

    assert spans(a) and spans(a) <= {"John Smith", "the Mayo Clinic", "Mayo Clinic"}
    assert spans(b) and spans(b) <= {"Apple", "Tim Cook"}
    assert spans(again) and spans(again) <= {"Apple", "Tim Cook"}  # not the planted task 2
    assert spans(planted) != spans(again)


def test_the_image_cache_is_scoped_by_token(client: TestClient) -> None:
    """A second caller with a token Label Studio refuses must not get the first one's image."""

    def only_token_a(h: object) -> tuple[int, bytes, dict[str, str]]:
        from tests.api.ls_canary import image

        ok = h.headers.get("authorization") == "Token a"  # type: ignore[attr-defined]
        return image(h) if ok else (401, b"", {})  # type: ignore[arg-type]

    with Canary(only_token_a) as ls, label_studio_side(client, allowed=(ls.origin,)):
        task = {"id": 1, "data": {"image": "/data/upload/1/astronaut.png"}}
        setup(client, "508.1", ls.origin, "a")
        [ok] = predict(client, "508.1", task)
        setup(client, "509.1", ls.origin, "b")
        [refused] = predict(client, "509.1", task)
        assert ok["result"] and refused == []
        assert [h.headers["authorization"] for h in ls.hits] == ["Token a", "Token b"]


def test_background_failures_log_one_line_without_query_strings(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    def not_found(h: object) -> tuple[int, bytes, dict[str, str]]:
        return 404, b"", {}

    with Canary(not_found) as ls, label_studio_side(client, allowed=(ls.origin,)) as rt:
        setup(client, "510.1", ls.origin, "t")
        before = metric(
            client,
            "prelabel_ls_background_failures_total",
            kind="prediction",
            reason="fetch_failed",
        )
        ref = "/data/local-files/?d=x.jpg&X-Amz-Signature=s3cr3t"
        with caplog.at_level(logging.INFO):
            assert predict(client, "510.1", {"id": 77, "data": {"image": ref}}) == [[]]
            portal(client).call(rt.ls_predictor.drain)
        lines = [r for r in caplog.records if "77" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
        assert "project=510.1" in lines[0].getMessage() and "s3cr3t" not in caplog.text
        after = metric(
            client,
            "prelabel_ls_background_failures_total",
            kind="prediction",
            reason="fetch_failed",
        )
        assert after == before + 1
