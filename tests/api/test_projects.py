"""/v1/projects: examples in, a learned classifier out, on the real MiniLM embedder; bad input
stores nothing; a restart keeps the model; ownership as for jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.domain.apikeys import key_line
from app.main import create_app
from tests.conftest import portal, runtime_of
from tests.domain.test_classify import SUPPORT

ALICE = "pl_alice-0123456789abcdefghijklmnopqrstuvwxyzABCD"
BOB = "pl_bob-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
ROOT = "pl_root-0123456789abcdefghijklmnopqrstuvwxyzABCDE"


def settings(state_db: Path, **extra: Any) -> Settings:
    return Settings(
        models=["minilm-l6-v2"],
        default_detector="",
        default_sam="",
        default_ner="",
        state_db=state_db,
        **extra,
    )


def examples(per_label: int = 6) -> list[dict[str, str]]:
    return [{"text": t, "label": label} for label, ts in SUPPORT.items() for t in ts[:per_label]]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings(tmp_path / "state.db")), raise_server_exceptions=False
    ) as c:
        yield c


UNSEEN = ["Can I get my money back for the shoes?", "Uploading a photo makes the app hang"]


def test_examples_train_and_predict_with_a_version(client: TestClient) -> None:
    r = client.post("/v1/projects/support/examples", json={"examples": examples()})
    assert r.status_code == 200, r.text
    assert r.json()["examples"] == 18 and r.json()["revision"] == 1
    r = client.post("/v1/projects/support/train?wait=true")
    assert r.status_code == 200, r.text
    model = r.json()
    assert model["version"].startswith("1-") and not model["stale"] and not model["training"]
    assert model["examples_per_label"] == {"bug": 6, "praise": 6, "refund": 6}
    assert model["trained_on"] == 18 and model["cv_folds"] == 5 and model["cv_accuracy"] >= 0.8
    assert client.get("/v1/projects/support/model").json() == model

    r = client.post("/v1/classify", json={"texts": UNSEEN, "project": "support"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "few-shot" and body["model_version"] == model["version"]
    assert [res["labels"] for res in body["results"]] == [["refund"], ["bug"]]
    assert abs(sum(s["score"] for s in body["results"][0]["scores"]) - 1) < 1e-3

    # More examples: a retrain in the background, then a new version serves.
    more = [{"text": "Reimburse me for the late parcel", "label": "refund"}]
    assert client.post("/v1/projects/support/examples", json={"examples": more}).json()["stale"]
    v2 = client.post("/v1/projects/support/train?wait=true").json()
    assert v2["version"].startswith("2-") and v2["trained_on"] == 19
    again = client.post("/v1/classify", json={"texts": UNSEEN, "project": "support"}).json()
    assert again["model_version"] == v2["version"]


def test_a_project_is_zero_shot_until_it_has_a_model(tmp_path: Path) -> None:
    s = settings(tmp_path / "state.db", auto_train=False)
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        body = {"examples": examples(1), "labels": ["refund", "bug", "praise"]}
        assert c.post("/v1/projects/p/examples", json=body).status_code == 200
        r = c.post("/v1/classify", json={"texts": UNSEEN, "project": "p"}).json()
        assert r["mode"] == "zero-shot"
        assert [res["labels"] for res in r["results"]] == [["refund"], ["bug"]]


def test_multi_label_project(client: TestClient) -> None:
    ex = [
        {"text": t, "labels": [label, "urgent"] if i % 2 else [label]}
        for label, ts in SUPPORT.items()
        for i, t in enumerate(ts)
    ]
    r = client.post("/v1/projects/m/examples", json={"examples": ex, "multi_label": True})
    assert r.status_code == 200, r.text
    model = client.post("/v1/projects/m/train?wait=true").json()
    assert model["multi_label"] and model["examples_per_label"]["urgent"] == 9
    res = client.post("/v1/classify", json={"texts": UNSEEN[:1], "project": "m"}).json()
    assert res["mode"] == "few-shot" and "refund" in res["results"][0]["labels"]
    scores = res["results"][0]["scores"]
    assert abs(sum(s["score"] for s in scores) - 1) > 1e-3 or len(scores) == 1  # sigmoids


def test_bad_examples_store_nothing(client: TestClient) -> None:
    declared = {"examples": examples(2), "labels": ["refund", "bug", "praise"]}
    assert client.post("/v1/projects/p/examples", json=declared).status_code == 200
    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"examples": [{"text": "x", "label": "spam"}]}, 422, "not in the project's label set"),
        ({"examples": [{"text": "", "label": "bug"}]}, 422, "examples[0].text is empty"),
        ({"examples": []}, 422, "examples is empty"),
        ({"examples": [{"text": "x", "labels": ["bug", "refund"]}]}, 422, "single-label"),
        ({"examples": [{"text": "x"}]}, 422, "exactly one of label and labels"),
        ({"examples": [{"text": "x", "label": "bug"}], "labels": ["a", "b"]}, 409, "created"),
        ({"examples": [{"text": "x", "label": "bug"}], "multi_label": True}, 409, "single-label"),
        (
            {"examples": [{"text": f"t{i}", "label": "bug"} for i in range(100_000)]},
            422,
            "at most 10000",
        ),
    ]
    for body, status, message in bad:
        r = client.post("/v1/projects/p/examples", json=body)
        assert r.status_code == status, (body.get("labels"), r.text)
        assert message in r.json()["error"]["message"]
    model = client.get("/v1/projects/p/model").json()
    assert model["examples"] == 6 and model["revision"] == 1
    r = client.post("/v1/projects/bad name!/examples", json={"examples": examples(1)})
    assert r.status_code == 422


def test_restart_keeps_the_learned_model(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with TestClient(create_app(settings(db))) as first:
        first.post("/v1/projects/support/examples", json={"examples": examples()})
        trained = first.post("/v1/projects/support/train?wait=true").json()
        before = first.post("/v1/classify", json={"texts": UNSEEN, "project": "support"}).json()
    with TestClient(create_app(settings(db))) as second:
        assert second.get("/v1/projects/support/model").json()["version"] == trained["version"]
        after = second.post("/v1/classify", json={"texts": UNSEEN, "project": "support"}).json()
    assert after["model_version"] == trained["version"]
    assert after["results"] == before["results"]


def test_two_replicas_on_one_store_serve_the_newest_model(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    s = settings(db, auto_train=False)
    with TestClient(create_app(s)) as a, TestClient(create_app(s)) as b:
        a.post("/v1/projects/support/examples", json={"examples": examples(3)})
        v1 = a.post("/v1/projects/support/train?wait=true").json()["version"]
        assert (
            b.post("/v1/classify", json={"texts": UNSEEN, "project": "support"}).json()[
                "model_version"
            ]
            == v1
        )
        b.post("/v1/projects/support/examples", json={"examples": examples()})
        v2 = b.post("/v1/projects/support/train?wait=true").json()["version"]
        assert v2.startswith("2-")
        assert (
            a.post("/v1/classify", json={"texts": UNSEEN, "project": "support"}).json()[
                "model_version"
            ]
            == v2
        )


def test_removing_examples_by_key_retrains_without_them(client: TestClient) -> None:
    ex = [{**e, "key": f"task-{i}"} for i, e in enumerate(examples(3))]
    client.post("/v1/projects/r/examples", json={"examples": ex})
    v1 = client.post("/v1/projects/r/train?wait=true").json()
    r = client.post("/v1/projects/r/examples/delete", json={"keys": ["task-0", "nope"]})
    assert r.status_code == 200, r.text
    assert r.json()["removed"] == 1 and r.json()["model"]["examples"] == 8
    v2 = client.post("/v1/projects/r/train?wait=true").json()
    assert v2["version"] != v1["version"] and v2["trained_on"] == 8
    assert v2["examples_per_label"] == {"bug": 3, "praise": 3, "refund": 2}
    r = client.post("/v1/projects/r/examples/delete", json={"keys": []})
    assert r.status_code == 422


def test_delete_resets(client: TestClient) -> None:
    client.post("/v1/projects/gone/examples", json={"examples": examples(2)})
    client.post("/v1/projects/gone/train?wait=true")
    assert client.delete("/v1/projects/gone").json() == {"project": "gone", "deleted": True}
    assert client.get("/v1/projects/gone/model").status_code == 404
    assert client.delete("/v1/projects/gone").status_code == 404
    r = client.post("/v1/projects/gone/examples", json={"examples": examples(1)})
    assert r.json()["examples"] == 3 and r.json()["version"] is None


def test_ownership_follows_the_jobs_rules(tmp_path: Path) -> None:
    keys = [
        key_line(ALICE, "user", "alice"),
        key_line(BOB, "user", "bob"),
        key_line(ROOT, "admin", "root"),
    ]
    s = settings(tmp_path / "state.db", api_keys=keys)
    as_ = {
        name: {"Authorization": f"Bearer {k}"}
        for name, k in (("alice", ALICE), ("bob", BOB), ("root", ROOT))
    }
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        body = {"examples": examples(2)}
        assert c.post("/v1/projects/a/examples", json=body).status_code == 401
        assert c.post("/v1/projects/a/examples", json=body, headers=as_["alice"]).status_code == 200
        assert c.get("/v1/projects/a/model", headers=as_["bob"]).status_code == 404
        r = c.post("/v1/classify", json={"texts": ["x"], "project": "a"}, headers=as_["bob"])
        assert r.status_code == 404
        assert c.delete("/v1/projects/a", headers=as_["bob"]).status_code == 404
        r = c.post("/v1/projects/a/examples", json=body, headers=as_["bob"])
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
        assert c.get("/v1/projects/a/model", headers=as_["root"]).json()["examples"] == 6
        assert c.post("/v1/projects/a/train?wait=true", headers=as_["root"]).status_code == 200
        r = c.post("/v1/classify", json={"texts": UNSEEN, "project": "a"}, headers=as_["alice"])
        assert r.json()["mode"] == "few-shot"
        assert c.delete("/v1/projects/a", headers=as_["root"]).status_code == 200


def test_label_studio_projects_are_for_admin_keys_only(tmp_path: Path) -> None:
    """`ls-...` projects are the Label Studio backend's (created with no owner): a user key can
    neither read, reset nor pre-create one; an admin key can."""
    keys = [key_line(ALICE, "user", "alice"), key_line(ROOT, "admin", "root")]
    s = settings(tmp_path / "state.db", api_keys=keys)
    alice = {"Authorization": f"Bearer {ALICE}"}
    root = {"Authorization": f"Bearer {ROOT}"}
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        name = "ls-0123abcd-7.1700000000-deadbeef"
        body = {"examples": examples(2)}
        r = c.post(f"/v1/projects/{name}/examples", json=body, headers=alice)
        assert r.status_code == 409 and "admin keys only" in r.json()["error"]["message"]
        spans = {"examples": [{"text": "Take aspirin daily.", "spans": []}], "kind": "spans"}
        assert c.post(f"/v1/projects/{name}/examples", json=spans, headers=alice).status_code in (
            409,
            422,
        )
        assert c.get(f"/v1/projects/{name}/model", headers=root).status_code == 404
        # The backend creates it without an owner (as Label Studio learning does).
        runtime = runtime_of(c)
        portal(c).call(runtime.projects.add_examples, name, None, _examples_in(2))
        assert c.get(f"/v1/projects/{name}/model", headers=alice).status_code == 404
        assert c.delete(f"/v1/projects/{name}", headers=alice).status_code == 404
        r = c.post("/v1/classify", json={"texts": ["x"], "project": name}, headers=alice)
        assert r.status_code == 404
        assert c.get(f"/v1/projects/{name}/model", headers=root).json()["examples"] == 6


def _examples_in(per_label: int) -> list[Any]:
    from app.domain.classify.projects import Example

    return [Example(e["text"], (e["label"],)) for e in examples(per_label)]


def test_two_replicas_on_postgresql_agree_after_a_retrain(tmp_path: Path) -> None:
    """A real PostgreSQL server: a retrain on one replica is served by the other at once, and a
    third started afterwards (a restart) serves it too."""
    from tests.postgres_server import postgres_server

    with postgres_server() as dsn:
        s = settings(tmp_path / "unused.db", auto_train=False, state_dsn=dsn)
        with TestClient(create_app(s)) as a, TestClient(create_app(s)) as b:
            a.post("/v1/projects/support/examples", json={"examples": examples(3)})
            v1 = a.post("/v1/projects/support/train?wait=true").json()["version"]
            r = b.post("/v1/classify", json={"texts": UNSEEN, "project": "support"}).json()
            assert r["mode"] == "few-shot" and r["model_version"] == v1
            b.post("/v1/projects/support/examples", json={"examples": examples()})
            v2 = b.post("/v1/projects/support/train?wait=true").json()
            assert v2["version"].startswith("2-") and v2["trained_on"] == 18
            r = a.post("/v1/classify", json={"texts": UNSEEN, "project": "support"}).json()
            assert r["model_version"] == v2["version"]
            assert [res["labels"] for res in r["results"]] == [["refund"], ["bug"]]
        with TestClient(create_app(s)) as c:
            assert c.get("/v1/projects/support/model").json()["version"] == v2["version"]
