"""Two service instances (two replicas) on one real PostgreSQL job store
(tests/postgres_server.py), the real NanoDet-g on real photographs: a job runs on exactly one
replica, any replica reads and cancels it, and a replica that dies mid-job leaves a lease that
expires and the other finishes the job, every item recorded once.

The one fake: each manager's per-item step is wrapped to count the items it computed and, where
a test needs a replica stuck mid-job, to hold items past the first few forever (so no test
depends on how fast the detector is)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo
from pydantic import ValidationError

from app.batch.inputs import Item
from app.batch.jobs import JobManager
from app.batch.pipeline import JobSpec
from app.config import Settings
from app.main import build_jobs, create_app
from app.runtime import Runtime
from tests.batch.conftest import make_dataset
from tests.batch.test_jobs_api import DEADLINE_S, ended, result_lines, wait_for
from tests.postgres_server import postgres_server

_databases = itertools.count()


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def dsn(pg_dsn: str) -> str:
    name = f"replicas_{next(_databases)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return make_conninfo(pg_dsn, dbname=name)


def settings(root: Path, dsn: str, lease_s: float = 3.0) -> Settings:
    """Jobs on (no SQLite file: the DSN is the store), one item in flight, a 3 s lease."""
    return Settings(
        models=["nanodet-g"],
        default_sam="",
        default_ner="",
        jobs_enabled=True,
        state_dsn=dsn,
        job_input_roots=[str(root)],
        job_concurrency=1,
        job_lease_s=lease_s,
        job_poll_s=0.5,
    )


def instrument(client: TestClient, hold_after: int | None = None) -> Counter[tuple[str, str]]:
    """Count the (job, key) items this replica computed to the end; with `hold_after`, every
    item past that many (per job) waits forever instead: the replica hangs mid-job."""
    manager: JobManager = client.app.state.jobs  # type: ignore[attr-defined]
    computed: Counter[tuple[str, str]] = Counter()
    original = manager._one

    async def one(job_id: str, spec: JobSpec, item: Item) -> None:
        mine = sum(1 for j, _ in computed if j == job_id)
        if hold_after is not None and mine >= hold_after:
            try:
                await asyncio.Event().wait()  # until cancelled
            finally:
                manager._sem.release()
        await original(job_id, spec, item)
        computed[job_id, item.key] += 1

    manager._one = one  # type: ignore[method-assign]
    return computed


def images(root: Path, name: str, copies: int) -> list[str]:
    folder = root / name
    folder.mkdir()
    return [str(folder / k) for k in make_dataset(folder, copies=copies)]


def until(check: Any) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_job_runs_once_reads_anywhere_and_a_cancel_anywhere_stops_it(
    tmp_path: Path, dsn: str
) -> None:
    s = settings(tmp_path, dsn)
    with (
        TestClient(create_app(s), raise_server_exceptions=False) as a,
        TestClient(create_app(s), raise_server_exceptions=False) as b,
    ):
        on_a, on_b = instrument(a), instrument(b)
        paths = images(tmp_path, "eight", copies=2)
        job_id = a.post("/v1/jobs", json={"items": paths, "task": "detect"}).json()["id"]
        job = wait_for(b, job_id, ended)  # read on B
        assert (job["state"], job["done"], job["failed"]) == ("done", 8, 0)
        assert [line["key"] for line in result_lines(b, job_id)] == sorted(paths)
        # Run by its submitter alone, each item computed once: B polled all along.
        assert on_a == Counter({(job_id, p): 1 for p in paths}) and not on_b

    with (
        TestClient(create_app(s), raise_server_exceptions=False) as a,
        TestClient(create_app(s), raise_server_exceptions=False) as b,
    ):
        on_a = instrument(a, hold_after=3)  # A hangs on its 4th item until cancelled
        manager_a: JobManager = a.app.state.jobs  # type: ignore[attr-defined]
        paths = images(tmp_path, "twelve", copies=3)
        job_id = a.post("/v1/jobs", json={"items": paths, "task": "detect"}).json()["id"]
        wait_for(b, job_id, lambda j: j["done"] == 3)
        assert job_id in manager_a._tasks
        r = b.delete(f"/v1/jobs/{job_id}")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        until(lambda: job_id not in manager_a._tasks)  # A's watcher noticed and stopped it
        job = a.get(f"/v1/jobs/{job_id}").json()
        assert (job["state"], job["done"], job["failed"]) == ("cancelled", 3, 0)
        assert sum(on_a.values()) == 3 and len(result_lines(a, job_id)) == 3


def test_a_replica_that_dies_mid_job_is_taken_over_after_its_lease(
    tmp_path: Path, dsn: str
) -> None:
    s = settings(tmp_path, dsn)
    paths = images(tmp_path, "twelve", copies=3)
    with TestClient(create_app(s), raise_server_exceptions=False) as b:
        on_b = instrument(b)
        with TestClient(create_app(s), raise_server_exceptions=False) as a:
            on_a = instrument(a, hold_after=3)
            job_id = a.post("/v1/jobs", json={"items": paths, "task": "detect"}).json()["id"]
            wait_for(b, job_id, lambda j: j["done"] == 3)
            assert not on_b  # A is alive and renews its lease: B keeps off
            a.app.state.jobs.release_on_stop = False  # type: ignore[attr-defined]
        # A is gone, its lease left behind as a killed process leaves it; B claims it once
        # the lease has expired and computes only what A had not recorded.
        job = wait_for(b, job_id, ended)
        assert (job["state"], job["done"], job["failed"]) == ("done", 12, 0)
        assert sum(on_a.values()) == 3 and sum(on_b.values()) == 9
        assert set(on_a) | set(on_b) == {(job_id, p) for p in paths}
        assert max((on_a + on_b).values()) == 1
        assert [line["key"] for line in result_lines(b, job_id)] == sorted(paths)


def test_a_replica_stopped_cleanly_hands_its_jobs_over_at_once(tmp_path: Path, dsn: str) -> None:
    """A's lease is 10 minutes, far past the test's deadline: B can only finish the job if A's
    clean stop released it."""
    paths = images(tmp_path, "eight", copies=2)
    with TestClient(create_app(settings(tmp_path, dsn, lease_s=600.0))) as a:
        on_a = instrument(a, hold_after=2)
        job_id = a.post("/v1/jobs", json={"items": paths, "task": "detect"}).json()["id"]
        wait_for(a, job_id, lambda j: j["done"] == 2)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT state, runner, lease_until FROM prelabel_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row == ("running", None, None)
    with TestClient(create_app(settings(tmp_path, dsn))) as b:
        on_b = instrument(b)
        job = wait_for(b, job_id, ended)
    assert (job["state"], job["done"]) == ("done", 8)
    assert sum(on_a.values()) == 2 and sum(on_b.values()) == 6


def test_the_job_api_has_one_switch(tmp_path: Path, dsn: str) -> None:
    """A DSN alone leaves jobs off; PRELABEL_JOBS_ENABLED turns them on in PostgreSQL; on with
    no store at all is a configuration error."""
    base: dict[str, Any] = {"models": ["nanodet-g"], "default_sam": "", "default_ner": ""}

    def jobs(**kw: Any) -> JobManager | None:
        rt = Runtime(Settings(**base, **kw))
        try:
            return build_jobs(rt)
        finally:
            rt.project_store.close()

    assert jobs(state_dsn=dsn) is None
    manager = jobs(state_dsn=dsn, jobs_enabled=True)
    assert manager is not None and manager.dsn == dsn
    sqlite = jobs(jobs_db=tmp_path / "jobs.db")
    assert sqlite is not None and sqlite.dsn is None
    assert jobs(jobs_db=tmp_path / "jobs.db", jobs_enabled=False) is None
    with pytest.raises(ValidationError, match="PRELABEL_JOBS_ENABLED needs"):
        Settings(**base, jobs_enabled=True)
    with pytest.raises(ValidationError, match="at most a third"):
        Settings(**base, job_lease_s=3.0, job_poll_s=2.0)
