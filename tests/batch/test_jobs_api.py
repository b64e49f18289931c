"""/v1/jobs on the real NanoDet-g and real photographs, persisted in SQLite."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pycocotools.coco import COCO

from app.config import Settings
from app.domain.apikeys import key_line, new_key
from app.main import create_app
from tests.batch.conftest import SAMPLES, SKIMAGE_DATA, make_dataset

ASTRONAUT_BOX = [0.0, 0.0, 380.0, 512.0]
DEADLINE_S = 60.0


def settings(root: Path, **kw: Any) -> Settings:
    return Settings(
        models=["nanodet-g"],
        default_sam="",
        default_ner="",
        jobs_db=root / "jobs.db",
        job_input_roots=[str(root / "in")],
        **kw,
    )


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def wait_for(client: TestClient, job_id: str, done: Any) -> dict[str, Any]:
    """Poll the job until `done(job)`; fail after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        r = client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.json()
        job: dict[str, Any] = r.json()
        if done(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def ended(job: dict[str, Any]) -> bool:
    return job["state"] not in ("queued", "running")


def result_lines(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/jobs/{job_id}/results")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in r.text.splitlines()]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jobs")
    (root / "in").mkdir()
    return root


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings(root)), raise_server_exceptions=False) as c:
        yield c


def six_images(folder: Path) -> list[str]:
    """The four samples, a second astronaut and a truncated PNG: absolute paths, sorted."""
    folder.mkdir(parents=True)
    for name in SAMPLES:
        shutil.copyfile(SKIMAGE_DATA / name, folder / name)
    shutil.copyfile(SKIMAGE_DATA / "astronaut.png", folder / "astronaut2.png")
    (folder / "corrupt.png").write_bytes((SKIMAGE_DATA / "astronaut.png").read_bytes()[:3000])
    return sorted(str(p) for p in folder.iterdir())


def test_a_job_runs_every_item_and_streams_results_in_key_order(
    client: TestClient, root: Path
) -> None:
    paths = six_images(root / "in" / "six")
    r = client.post("/v1/jobs", json={"items": paths, "task": "detect", "format": "coco"})
    assert r.status_code == 202, r.json()
    job_id = r.json()["id"]
    assert r.json()["total"] == 6 and r.json()["model"] == "nanodet-g"

    job = wait_for(client, job_id, ended)
    assert (job["state"], job["done"], job["failed"], job["total"]) == ("done", 5, 1, 6)
    assert job["rate"] > 0 and job["eta_s"] == 0

    lines = result_lines(client, job_id)
    assert [line["key"] for line in lines] == paths
    by_name = {Path(line["key"]).name: line for line in lines}
    assert not by_name["corrupt.png"]["ok"]
    assert by_name["corrupt.png"]["error"].startswith("invalid_image")
    for name in ("astronaut.png", "astronaut2.png"):
        res = by_name[name]["result"]
        assert (res["width"], res["height"]) == (512, 512)
        people = [o for o in res["objects"] if o["label"] == "person"]
        assert people and iou(people[0]["box"], ASTRONAUT_BOX) > 0.6

    assert job_id in [j["id"] for j in client.get("/v1/jobs").json()["jobs"]]

    # The export in the job's format loads in pycocotools, the failed item left out.
    r = client.get(f"/v1/jobs/{job_id}/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    coco = COCO()
    coco.dataset = r.json()
    coco.createIndex()
    assert sorted(im["file_name"] for im in coco.dataset["images"]) == [
        f"six/{Path(p).name}" for p in paths if not p.endswith("corrupt.png")
    ]
    astronaut = next(i for i in coco.imgs.values() if i["file_name"] == "six/astronaut.png")
    cats = {coco.cats[a["category_id"]]["name"] for a in coco.imgToAnns[astronaut["id"]]}
    assert "person" in cats
    # Per-image formats come as a zip of the folder `prelabel annotate` writes.
    r = client.get(f"/v1/jobs/{job_id}/export", params={"format": "yolo"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = set(z.namelist())
        classes = z.read("classes.txt").decode().split()
        rows = z.read("labels/six/astronaut.txt").decode().splitlines()
    assert "labels/six/corrupt.txt" not in names and len(names) == 6
    assert any(classes[int(row.split()[0])] == "person" for row in rows)
    r = client.get(f"/v1/jobs/{job_id}/export", params={"format": "conll"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


def test_paths_outside_the_input_roots_are_refused(client: TestClient, root: Path) -> None:
    outside = root / "outside.png"
    shutil.copyfile(SKIMAGE_DATA / "astronaut.png", outside)
    (root / "in" / "link.png").symlink_to(outside)
    for path in (str(outside), str(root / "in" / ".." / "outside.png"), str(root / "in/link.png")):
        r = client.post("/v1/jobs", json={"items": [path], "task": "detect"})
        assert r.status_code == 422, (path, r.json())
        assert r.json()["error"]["code"] == "validation_error"


def test_a_source_folder_or_manifest_is_listed_like_annotate_does(
    client: TestClient, root: Path
) -> None:
    folder = root / "in" / "src"
    folder.mkdir()
    keys = make_dataset(folder)
    r = client.post("/v1/jobs", json={"source": str(folder), "task": "detect"})
    assert r.status_code == 202, r.json()
    job = wait_for(client, r.json()["id"], ended)
    assert (job["state"], job["done"], job["total"]) == ("done", len(keys), len(keys))
    lines = result_lines(client, job["id"])
    assert sorted(line["key"] for line in lines) == sorted(str(folder / k) for k in keys)
    # A manifest inside a root may still not point outside it; nor may the source itself.
    shutil.copyfile(SKIMAGE_DATA / "astronaut.png", root / "outside2.png")
    (folder / "escape.lst").write_text("00_astronaut.png\n../../../outside2.png\n")
    for source in (str(folder / "escape.lst"), str(root), str(folder / "none.lst")):
        r = client.post("/v1/jobs", json={"source": source, "task": "detect"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", source
    r = client.post("/v1/jobs", json={"source": str(folder), "items": ["a.png"], "task": "detect"})
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"items": ["x.png"], "task": "ner"}, 422),  # texts task given images
        ({"texts": ["hello"], "task": "detect"}, 422),
        ({"items": [], "task": "detect"}, 422),
        ({"items": ["a.png", "a.png"], "task": "detect"}, 422),
        ({"items": ["a.png"], "task": "detect", "format": "conll"}, 422),
        ({"items": ["a.png"], "task": "detect", "model": "nope"}, 404),
    ],
)
def test_bad_submissions(client: TestClient, body: dict[str, Any], status: int) -> None:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == status, r.json()
    assert "error" in r.json()


@pytest.mark.parametrize(
    "raw",
    [
        '{"task": "ner", "texts": ["\\ud800"]}',  # a lone surrogate
        '{"task": "detect", "items": ["a.png"], "score_threshold": NaN}',
        '{"task": "detect", "items": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
)
def test_hostile_json_is_a_422(client: TestClient, raw: str) -> None:
    r = client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"


def test_unknown_job_is_404(client: TestClient) -> None:
    for r in (
        client.get("/v1/jobs/nope"),
        client.get("/v1/jobs/nope/results"),
        client.delete("/v1/jobs/nope"),
    ):
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_cancel_stops_a_job(client: TestClient, root: Path) -> None:
    folder = root / "in" / "many"
    folder.mkdir()
    paths = [str(folder / k) for k in make_dataset(folder, copies=25)]
    job_id = client.post("/v1/jobs", json={"items": paths, "task": "detect"}).json()["id"]
    r = client.delete(f"/v1/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "cancelled" and job["done"] + job["failed"] < job["total"] == 100
    assert len(result_lines(client, job_id)) == job["done"] + job["failed"]
    # Cancelling an ended job changes nothing.
    assert client.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"


def test_a_restarted_service_resumes_and_records_every_item_once(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [str(folder / k) for k in make_dataset(folder, copies=10)]
    s = settings(tmp_path, job_concurrency=1)
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        job_id = c.post("/v1/jobs", json={"items": paths, "task": "detect"}).json()["id"]
        wait_for(c, job_id, lambda j: j["done"] >= 1)
    # One item in flight at a time and ~20 ms each: the stop lands long before 40 are done.
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        ((state, before),) = db.execute("SELECT state, done FROM jobs WHERE id = ?", (job_id,))
    assert state == "running" and 1 <= before < 40

    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        job = wait_for(c, job_id, ended)
        assert (job["state"], job["done"], job["failed"], job["total"]) == ("done", 40, 0, 40)
        lines = result_lines(c, job_id)
    assert [line["key"] for line in lines] == sorted(paths)
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        ((count,),) = db.execute("SELECT COUNT(*) FROM results WHERE job_id = ?", (job_id,))
    assert count == 40


def test_a_job_over_the_item_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    s = settings(tmp_path, max_job_items=2)
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        items = [str(tmp_path / "in" / f"{i}.png") for i in range(3)]
        r = c.post("/v1/jobs", json={"items": items, "task": "detect"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert c.get("/v1/jobs").json()["jobs"] == []


def test_with_api_keys_a_job_belongs_to_its_submitter(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    image = tmp_path / "in" / "astronaut.png"
    shutil.copyfile(SKIMAGE_DATA / "astronaut.png", image)
    keys = {name: new_key() for name in ("alice", "bob", "root")}
    lines = [key_line(keys[n], "admin" if n == "root" else "user", n) for n in keys]
    auth = {n: {"Authorization": f"Bearer {k}"} for n, k in keys.items()}
    with TestClient(create_app(settings(tmp_path, api_keys=lines))) as c:
        assert c.post("/v1/jobs", json={"items": [str(image)], "task": "detect"}).status_code == 401
        r = c.post(
            "/v1/jobs", json={"items": [str(image)], "task": "detect"}, headers=auth["alice"]
        )
        assert r.status_code == 202 and r.json()["owner"] == "alice"
        job_id = r.json()["id"]
        deadline = time.monotonic() + DEADLINE_S
        while not ended(c.get(f"/v1/jobs/{job_id}", headers=auth["alice"]).json()):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # Bob neither sees nor cancels it; the admin sees and cancels everyone's.
        assert c.get("/v1/jobs", headers=auth["bob"]).json()["jobs"] == []
        for method, path in (
            ("GET", f"/v1/jobs/{job_id}"),
            ("GET", f"/v1/jobs/{job_id}/results"),
            ("GET", f"/v1/jobs/{job_id}/export?format=coco"),
            ("DELETE", f"/v1/jobs/{job_id}"),
        ):
            assert c.request(method, path, headers=auth["bob"]).status_code == 404, path
            assert c.request(method, path, headers=auth["alice"]).status_code == 200, path
        listed = c.get("/v1/jobs", headers=auth["root"]).json()["jobs"]
        assert [j["id"] for j in listed] == [job_id]
        assert c.delete(f"/v1/jobs/{job_id}", headers=auth["root"]).status_code == 200


def test_jobs_disabled_without_a_database() -> None:
    app = create_app(Settings(models=["nanodet-g"], default_sam="", default_ner=""))
    r = TestClient(app, raise_server_exceptions=False).get("/v1/jobs")  # no lifespan: no models
    assert r.status_code == 503
    message = "jobs are disabled: set PRELABEL_JOBS_DB or PRELABEL_JOBS_ENABLED"
    assert r.json()["error"]["message"] == message


def test_unfinished_jobs_are_capped_per_key_and_in_all(tmp_path: Path) -> None:
    """PRELABEL_MAX_ACTIVE_JOBS_PER_KEY = 1 and PRELABEL_MAX_ACTIVE_JOBS = 2: a second running
    job of one key and a third in all are 429 `too_many_jobs`; cancelling one frees its place.
    (Items are held inside the manager, the one fake: it keeps the jobs running.)"""
    (tmp_path / "in").mkdir()
    keys = {name: new_key() for name in ("alice", "bob", "carol")}
    lines = [key_line(keys[n], "user", n) for n in keys]
    s = settings(tmp_path, api_keys=lines, max_active_jobs_per_key=1, max_active_jobs=2)
    with TestClient(create_app(s)) as c:
        manager = c.app.state.jobs  # type: ignore[attr-defined]
        never = asyncio.Event()

        async def held(*args: Any) -> None:
            try:
                await never.wait()
            finally:
                manager._sem.release()

        manager._one = held

        def submit(who: str) -> Any:
            auth = {"Authorization": f"Bearer {keys[who]}"}
            return c.post("/v1/jobs", json={"task": "detect", "items": ["a.jpg"]}, headers=auth)

        first = submit("alice")
        assert first.status_code == 202
        again = submit("alice")
        assert again.status_code == 429, again.json()
        assert again.json()["error"]["code"] == "too_many_jobs"
        assert "per caller" in again.json()["error"]["message"]
        assert submit("bob").status_code == 202
        over = submit("carol")
        assert (
            over.status_code == 429
            and "2 jobs are queued or running" in over.json()["error"]["message"]
        )
        alice = {"Authorization": f"Bearer {keys['alice']}"}
        assert c.delete(f"/v1/jobs/{first.json()['id']}", headers=alice).status_code == 200
        assert submit("carol").status_code == 202
        assert submit("alice").status_code == 429  # the total is full again


def test_a_refused_submission_leaves_no_items_behind(client: TestClient, root: Path) -> None:
    """Items are stored while they are checked; a submission refused half-way (a path outside
    the roots after 12,000 good ones) removes what it stored."""
    items = [f"x/{i}.jpg" for i in range(12_000)] + ["../outside.jpg"]
    r = client.post("/v1/jobs", json={"task": "detect", "items": items})
    assert (
        r.status_code == 422 and "not under an allowed input root" in r.json()["error"]["message"]
    )
    db = sqlite3.connect(root / "jobs.db")
    try:
        orphans = db.execute(
            "SELECT COUNT(*) FROM items WHERE job_id NOT IN (SELECT id FROM jobs)"
        ).fetchone()[0]
    finally:
        db.close()
    assert orphans == 0


def test_a_job_stored_before_the_items_table_resumes(tmp_path: Path) -> None:
    """Jobs from before kept their list in spec_json: on their next start it moves to `items`
    and the job finishes."""
    (tmp_path / "in").mkdir()
    image = tmp_path / "in" / "astronaut.png"
    shutil.copyfile(SKIMAGE_DATA / "astronaut.png", image)
    with TestClient(create_app(settings(tmp_path))) as c:
        r = c.post("/v1/jobs", json={"task": "detect", "items": [str(image)]})
        job_id = r.json()["id"]
        wait_for(c, job_id, ended)
    db = sqlite3.connect(tmp_path / "jobs.db")
    with db:
        doc = json.loads(db.execute("SELECT spec_json FROM jobs").fetchone()[0])
        legacy = {**doc, "paths": [str(image)], "texts": None}
        db.execute(
            "UPDATE jobs SET state = 'running', done = 0, failed = 0, spec_json = ?",
            (json.dumps(legacy),),
        )
        db.execute("DELETE FROM items")
        db.execute("DELETE FROM results")
    db.close()
    with TestClient(create_app(settings(tmp_path))) as c:
        job = wait_for(c, job_id, ended)
        assert job["state"] == "done" and job["done"] == 1
        assert result_lines(c, job_id)[0]["key"] == str(image)
